// Small pieces every page uses.

/** A failure to show: read out by screen readers as soon as it appears. */
export function Problem({ text }: { text: string | null }) {
  return text ? (
    <p role="alert" class="error">
      {text}
    </p>
  ) : null;
}

/** An outcome to show (a key rotated, a token revoked), announced politely. */
export function Notice({ text }: { text: string | null }) {
  return text ? <p role="status">{text}</p> : null;
}
