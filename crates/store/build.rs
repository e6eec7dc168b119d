//! `sqlx::migrate!` embeds the files of `migrations/` at compile time; rebuild when one is added,
//! removed or changed (sqlx does not track new files by itself).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
