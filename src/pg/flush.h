// Merging a view's aggregated delta into its tables: one upsert statement per
// view and flush, with the delta passed as arrays (one element per group).
#pragma once

#include "engine/view_aggregator.h"
#include "pg/pg.h"
#include "pg/translate.h"

/// The prepared upsert of one continuous view.
struct ViewUpsert {
  Oid view;          ///< the result table
  SPIPlanPtr plan;   ///< shared groups: the upsert merging partial states into the state table
  SPIPlanPtr insert_plan;  ///< owned groups: plain INSERT of new groups' final values
  SPIPlanPtr set_plan;     ///< INSERT ... ON CONFLICT DO UPDATE SET col = excluded.col of final values
  SPIPlanPtr delete_plan;  ///< views with HAVING: DELETE the rows of the keys given (one array per key, no NULLs)
  /// Views with HAVING: the DELETE of one row whose keys are NULL where bit k
  /// of the index is set (`k IS NULL`, the others `= $k`), so the unique index
  /// serves it; NULL beyond 4 keys (delete_null_plan then, IS NOT DISTINCT FROM).
  SPIPlanPtr* delete_mask_plans;
  SPIPlanPtr delete_null_plan;
  int nparams;       ///< of insert_plan and set_plan: one array per view column
  Oid* elem_types;   ///< element type of each of those arrays: the column's, or text for a type without an array type
};

/// Builds and prepares the writes of view `view_oid` (result table); all
/// plans are kept across transactions (SPI_keepplan). insert_plan (owned
/// views) and set_plan write final values, one array per view column. A
/// shared view with aggregates also gets `plan`: INSERT of the delta's keys
/// and partial states (bytea, ViewAggregator::group_state_bytes) into its
/// state table `state_oid` (k0.., s) ON CONFLICT DO UPDATE SET s =
/// velostream._merge_states(view, t.s, excluded.s) RETURNING the merged
/// states. Call inside a transaction with SPI connected.
ViewUpsert* velostream_prepare_upsert(const ViewDesc* desc, Oid view_oid, Oid state_oid, bool owned);

/// Writes the delta `agg` of a shared view: its groups' partial states are
/// merged into the state table in key order by the aggregates' combine
/// functions (run by `merger`, an aggregator of the same plan whose scratch
/// memory is reset after), then the merged states are finalised by the same
/// code as an owned view's and written with set_plan. SPI connected, as the
/// view's owner. Returns the number of groups written. Raises ERROR on SQL
/// errors (e.g. bigint overflow), which aborts the flush's transaction.
uint64 velostream_upsert_delta(const ViewDesc* desc, const ViewUpsert* upsert,
                               const velostream::engine::ViewAggregator& agg,
                               velostream::engine::ViewAggregator& merger);

/// Writes the final values of an owned view's groups `groups[0..n)` (ids in
/// `store`, the worker's full state, in key order); `created[i]` marks groups
/// that are new to the table, written straight into the table's heap and
/// indexes like COPY (or a plain INSERT when the table has triggers, RLS,
/// constraints or changed columns). A new group whose row exists already
/// raises UNIQUE_VIOLATION (never an overwrite); call it in a subtransaction
/// to survive that. SPI connected. Returns n.
uint64 velostream_write_owned(const ViewDesc* desc, const ViewUpsert* upsert,
                              velostream::engine::ViewAggregator& store, const uint32_t* groups,
                              const uint8_t* created, size_t n);

/// Deletes the rows of an owned view whose encoded keys (of `store`'s plan)
/// are `keys`: ViewAggregator::gone_keys(), the sessions its last merge
/// combined into another or re-keyed. SPI connected, as the view's owner;
/// raises on SQL errors.
void velostream_delete_owned_keys(const ViewDesc* desc, const ViewUpsert* upsert,
                                  const velostream::engine::ViewAggregator& store, const std::vector<std::string>& keys);
