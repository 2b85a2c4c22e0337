//! The store contract, one suite for every backend: each case in `cases.rs`
//! runs against the embedded store (sled) and against a real PostgreSQL
//! (see `backends.rs`). A backend that passes this suite is one the rest of
//! stopgate can stand on.

mod backends;
mod cases;
mod copy;
mod model;
#[path = "../support/pg.rs"]
mod pg;
mod pg_only;

/// One `#[tokio::test]` per case and backend.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::backends::sled().await;
                    crate::cases::$case(backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::backends::postgres().await;
                    crate::cases::$case(backend).await;
                }
            )*
        }
    };
}

contract!(
    record_changes_state_once_and_keeps_history,
    suppressed_answers_for_a_whole_request,
    pages_list_only_suppressed_numbers_after_the_cursor,
    pages_never_skip_or_repeat_under_concurrent_inserts,
    counters_follow_events_and_sends,
    counters_are_exact_under_concurrent_increments,
    record_many_applies_a_batch_in_one_go,
    links_are_insert_if_absent_per_tenant_number_campaign,
    concurrent_minting_of_one_key_gives_one_code,
    a_colliding_code_is_drawn_again,
    marketing_sends_are_listed_per_tenant,
    the_last_marketing_send_keeps_its_campaign,
    possible_optouts_are_listed_in_order_after_a_cursor,
    idempotent_requests,
    one_of_concurrent_attempts_is_fresh,
    purged_requests_are_gone,
    marks_are_kept_once_until_purged,
    a_confirmation_goes_with_a_change_or_a_new_cap,
    a_reply_under_a_replay_record_is_recorded_once,
    bulk_imports_show_in_state_history_and_pages,
    durable_data_survives_reopen,
    an_erased_opt_out_blocks_across_a_reopen_until_a_start,
    bulk_and_individual_states_match_the_model,
    messages_are_found_listed_and_reported,
    concurrent_reports_keep_the_most_final,
    a_report_under_a_replay_record_is_applied_once,
    purging_removes_old_records_only,
    the_outbox_hands_out_items_in_order_per_key_under_leases,
    an_admitting_claim_leases_only_what_it_admits,
    given_up_items_are_listed_per_tenant,
    notifications_are_written_with_the_change_only,
    smpp_receipt_requests_live_on_the_record,
    held_messages_are_claimed_by_due_under_leases_and_finished,
    a_claim_that_ran_out_is_not_the_holders_any_more,
    postponed_messages_are_due_again_later_and_not_begun,
    a_begun_message_comes_back_begun_after_a_restart,
    cancel_wins_before_the_send_begins_and_not_after,
    a_release_rewrites_a_record_purged_meanwhile,
    concurrent_claims_never_share_a_held_message,
    frequency_caps_count_move_and_forget_per_recipient,
    concurrent_reservations_let_exactly_the_cap_through,
    consents_apply_in_order_and_keep_their_history,
    an_opt_out_withdraws_every_list_in_its_transaction,
    a_batch_of_opt_outs_withdraws_each_numbers_lists,
    consent_gates_answer_for_a_whole_request,
    consent_counts_by_state,
    concurrent_writers_of_one_new_record_all_apply,
    an_erasure_keeps_only_the_opt_out_and_it_still_blocks,
    an_erasure_of_a_bulk_imported_number_keeps_it_blocked,
    an_erasure_of_a_number_never_opted_out_keeps_nothing,
);
