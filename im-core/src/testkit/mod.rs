//! Conformance suites that every adapter must pass: ours (memory, SQL, Redis) and yours.
//!
//! Each suite is a module of `pub async fn`s, one per clause of the trait's `# Contract`,
//! each taking a fresh adapter. The macros expand to one named `#[test]` per scenario, so
//! a failure names the clause that broke:
//!
//! ```
//! use std::sync::Arc;
//! use im_core::memory::{LocalBroker, MemoryPresence, MemoryStorage};
//!
//! // In a test file of your adapter's crate (with im-core's `testkit` feature on):
//! im_core::storage_conformance!(async { Arc::new(MemoryStorage::new()) });
//! im_core::presence_conformance!(async { Arc::new(MemoryPresence::new()) });
//! im_core::broker_conformance!(async { Arc::new(LocalBroker::new()) });
//! # fn main() {}
//! ```
//!
//! The expression is evaluated once per test and must produce an `Arc` of the adapter
//! (it is coerced to `Arc<dyn Storage>` and so on). Each test runs on its own
//! multi-threaded tokio runtime, so your crate needs no tokio test features.
//!
//! For an adapter whose backend may be missing (a database server named by an
//! environment variable), write `optional` before the expression and let it produce an
//! `Option<Arc<_>>`: with `None` the test passes without running, so say loudly why
//! (`eprintln!`) when you return it.

pub mod broker;
pub mod nodes;
pub mod presence;
pub mod storage;

use std::future::Future;

/// Runs a scenario on a fresh two-worker runtime. Used by the macros.
pub fn run<F: Future>(scenario: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("failed to build a tokio runtime for a conformance test")
        .block_on(scenario)
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($suite:ident, $trait:path, optional ($make:expr), [$($name:ident),* $(,)?]) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::run(async {
                    // `None`: the adapter's backend is not available here (the factory
                    // says why); the test passes without running.
                    let Some(adapter) = ($make).await else { return };
                    let adapter: ::std::sync::Arc<dyn $trait> = adapter;
                    $crate::testkit::$suite::$name(adapter).await;
                });
            }
        )*
    };
    ($suite:ident, $trait:path, required ($make:expr), [$($name:ident),* $(,)?]) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::run(async {
                    let adapter: ::std::sync::Arc<dyn $trait> = ($make).await;
                    $crate::testkit::$suite::$name(adapter).await;
                });
            }
        )*
    };
}

/// Expands to one test per clause of the [`Storage`](crate::storage::Storage) contract.
#[macro_export]
macro_rules! storage_conformance {
    (@with $mode:ident ($make:expr)) => {
        $crate::__conformance_tests!(
            storage,
            $crate::storage::Storage,
            $mode ($make),
            [
                users_get_unique_ids_and_unique_names,
                users_are_found_by_id_and_by_name,
                users_batch_lookup_returns_each_existing_user_once,
                password_hashes_are_stored_and_replaced,
                profile_changes_apply_the_fields_given_even_at_once,
                accounts_are_disabled_and_enabled_once_even_at_once,
                disabled_accounts_gain_no_ties_even_at_once,
                invites_admit_as_many_as_their_uses_even_at_once,
                concurrent_registrations_of_one_name_leave_one_user,
                last_seen_never_moves_back,
                last_seen_lists_each_user_that_has_one_once,
                last_seen_many_skips_the_unknown_and_keeps_the_latest,
                devices_are_keyed_by_user_and_device_id,
                devices_are_deleted_one_or_all_but_one,
                friend_requests_are_upserted_and_listed_both_ways,
                accepting_a_request_makes_symmetric_friends_atomically,
                a_request_to_someone_who_asked_first_makes_friends,
                requests_crossing_at_once_make_friends,
                an_accept_and_a_request_back_at_once_make_friends,
                blocks_at_once_report_one_change,
                removing_a_friend_ends_it_both_ways,
                blocks_are_directed_and_clear_pending_requests,
                requests_are_refused_across_a_block_even_at_once,
                create_group_stores_members_and_first_message,
                update_group_applies_the_change_with_its_record,
                concurrent_adds_of_one_member_all_succeed,
                adds_at_once_apply_once_and_keep_the_member_limit,
                changes_decided_on_a_stale_view_are_refused,
                unknown_groups_are_not_found,
                user_groups_follow_membership,
                appends_get_gapless_seqs_from_one,
                concurrent_appends_are_gapless_and_unique,
                retries_with_the_same_key_store_once,
                append_many_keeps_the_order_and_answers_each,
                keys_compare_byte_for_byte,
                concurrent_retries_store_once,
                replies_keep_the_seq_they_quote,
                forwards_keep_their_origin,
                pins_are_once_per_message_and_keep_their_limit,
                pins_at_once_keep_the_limit,
                a_pin_and_an_unpin_at_once_agree_with_what_is_stored,
                reactions_are_one_per_user_per_message,
                reactions_at_once_keep_one_per_user,
                history_ranges_return_ascending_pages,
                read_cursors_never_move_back_and_appends_move_the_sender_s,
                conversations_list_direct_chats_for_both_and_groups_for_members,
                delivered_cursors_never_move_back,
                reads_and_own_appends_move_the_delivered_cursor_along,
                cursor_pages_list_who_got_a_seq_ascending_and_once,
                cursors_belong_to_one_conversation_and_only_to_users_with_one,
                conversations_report_delivered_and_the_direct_peer_s_cursors,
                amend_appends_its_event_and_rewrites_the_target,
                amend_retries_change_nothing,
                amend_of_a_missing_message_is_not_found_and_appends_nothing,
                concurrent_amend_retries_apply_once,
                a_recalled_message_cannot_be_amended_even_at_once,
                amends_are_seen_whole,
                attachments_are_found_while_a_live_message_names_them,
                pages_leave_out_what_the_viewer_hid_and_stay_full,
                hiding_is_per_user_and_per_conversation,
                search_finds_every_term_newest_first_where_the_user_may_read,
                search_leaves_out_hidden_recalled_and_left_behind,
                mentions_are_kept_and_mark_the_mentioned,
                mentions_at_once_leave_the_newest_mark,
            ]
        );
    };
    (optional $make:expr) => {
        $crate::storage_conformance!(@with optional ($make));
    };
    ($make:expr) => {
        $crate::storage_conformance!(@with required ($make));
    };
}

/// Expands to one test per clause of the [`Presence`](crate::presence::Presence) contract.
#[macro_export]
macro_rules! presence_conformance {
    (@with $mode:ident ($make:expr)) => {
        $crate::__conformance_tests!(
            presence,
            $crate::presence::Presence,
            $mode ($make),
            [
                online_devices_are_listed_per_user,
                online_elsewhere_leaves_out_the_node_s_own,
                set_online_replaces_a_device_s_entry,
                set_offline_removes_only_the_named_node_s_entry,
                entries_expire_unless_refreshed,
                a_lapsed_lease_is_gone_for_every_query,
                each_refresh_renews_the_lease,
                a_moved_device_outlives_its_old_node_s_set_offline,
                another_node_s_live_entry_counts_as_others_online,
                a_move_and_the_old_node_s_set_offline_at_once_keep_the_new_entry,
                a_lapsed_node_is_claimed_once_with_the_users_it_left,
                claim_own_takes_an_earlier_life_s_entries,
                leave_hands_the_users_over_after_the_delay,
            ]
        );
    };
    (optional $make:expr) => {
        $crate::presence_conformance!(@with optional ($make));
    };
    ($make:expr) => {
        $crate::presence_conformance!(@with required ($make));
    };
}

/// Expands to one test per clause of the [`Broker`](crate::broker::Broker) contract.
#[macro_export]
macro_rules! broker_conformance {
    (@with $mode:ident ($make:expr)) => {
        $crate::__conformance_tests!(
            broker,
            $crate::broker::Broker,
            $mode ($make),
            [
                published_envelopes_reach_the_node_in_order,
                envelopes_reach_only_the_addressed_node,
                broadcast_reaches_every_node,
                envelopes_published_together_arrive_in_order,
            ]
        );
    };
    (optional $make:expr) => {
        $crate::broker_conformance!(@with optional ($make));
    };
    ($make:expr) => {
        $crate::broker_conformance!(@with required ($make));
    };
}
