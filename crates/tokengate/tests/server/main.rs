//! The token service over HTTP: every endpoint and error, driven through the axum router
//! without sockets (`oneshot`), each case run against SQLite and PostgreSQL; and the binary
//! itself (`serve`, `dev`, `client`, `key`) for restarts, the master key and the CLI.
// Test helpers assert by panicking, as tests do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod admin;
mod audit;
mod cache;
mod client_documents;
mod cluster;
mod cors;
mod faults;
mod gateway;
mod gateway_env;
mod gateway_metrics;
mod gateway_tokens;
mod harness;
mod introspection;
mod lifecycle;
mod process;
mod ratelimit;
mod rules;
mod scaling;
mod sign_in;
mod telemetry;
mod timeouts;
mod token;

/// Declares each case of `$module` as two tests, `sqlite` and `postgres`.
macro_rules! on_both_backends {
    ($module:ident: $($name:ident),* $(,)?) => {
        mod $module {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        store::testing::run_sqlite(crate::$module::$name).await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        store::testing::run_postgres(crate::$module::$name).await;
                    }
                )*
            }
        }
    };
}

mod backends {
    on_both_backends!(token:
        client_credentials_issues_an_rfc9068_token,
        secret_post_and_method_mismatch,
        private_key_jwt,
        invalid_client,
        malformed_requests,
        scope_and_target,
        encrypted_audience,
        token_exchange,
        dpop_binding,
        dpop_nonce,
        database_unavailable,
        exchange_is_limited_to_holders_and_lifetimes,
    );
    on_both_backends!(sign_in:
        authorization_code_with_pkce,
        code_replay_revokes_what_it_issued,
        code_is_bound_to_client_redirect_and_verifier,
        consent_is_csrf_protected_and_can_be_refused,
        authorization_errors_are_shown_or_redirected,
        public_clients_use_the_code_grant_only,
        dpop_bound_code,
        refresh_tokens_rotate_and_reuse_revokes_the_grant,
        revoking_a_refresh_token_or_replaying_the_code_ends_the_grant,
        dpop_bound_refresh_tokens,
        dynamic_registration,
        racing_redemptions_leave_nothing_usable,
    );
    on_both_backends!(client_documents:
        a_client_known_by_its_document_signs_users_in,
        documents_that_break_the_rules_are_refused,
        documents_inside_the_network_are_not_fetched,
        consent_to_a_document_client_is_not_remembered,
    );
    on_both_backends!(introspection:
        introspect_json_and_jwt,
        revoke,
        key_rotation_keeps_old_tokens_valid,
        scheduled_rotation,
        expired_token_records_are_purged_after_a_day,
        tokens_recorded_for_a_disabled_client_are_revoked_by_maintenance,
    );
    on_both_backends!(admin:
        metadata_and_jwks,
        admin_auth_and_openapi,
        admin_clients,
        admin_keys_revocations_and_audit,
    );
    on_both_backends!(gateway:
        routing_rewriting_and_forwarded_identity,
        token_rules_and_challenges,
        encrypted_tokens_cache_and_revocation,
        forward_original_and_internal_tokens,
        dpop_bound_tokens,
        third_party_issuers_static_remote_and_discovered,
        mcp_protected_resource,
        upstream_failures_balancing_and_limits,
        streaming_and_upgrades_pass_through,
        hostile_input,
        reload_and_key_rotation_under_load,
        h2_upstreams_and_tls_listener,
        forwarded_headers_hop_by_hop_and_hosts,
    );
    on_both_backends!(gateway_metrics: metrics_by_route_status_and_reason);
    on_both_backends!(gateway_tokens:
        partner_claims_scp_and_decryption_keys,
        cached_tokens_never_outlive_exp,
    );
}
