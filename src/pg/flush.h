// Merging a view's aggregated delta into its tables: one upsert statement per
// view and flush, with the delta passed as arrays (one element per group).
#pragma once

#include "engine/view_aggregator.h"
#include "pg/pg.h"
#include "pg/translate.h"

/// The prepared upsert of one continuous view.
struct ViewUpsert {
  Oid view;          ///< the result table
  SPIPlanPtr plan;   ///< shared groups: the merging upsert; kept with SPI_keepplan
  SPIPlanPtr insert_plan;  ///< owned groups: plain INSERT of new groups' final values
  SPIPlanPtr set_plan;     ///< owned groups: INSERT ... ON CONFLICT DO UPDATE SET col = excluded.col
  int nparams;
  Oid* elem_types;   ///< element type of each array parameter
};

/// Builds and prepares the writes of view `view_oid` (result table). Shared
/// groups (`owned` false): one upsert merging partial states, through
/// `state_oid` (avg's partial states) when valid. Owned groups: insert_plan
/// and set_plan writing final values. Call inside a transaction with SPI
/// connected; the plans are kept across transactions.
ViewUpsert* velostream_prepare_upsert(const ViewDesc* desc, Oid view_oid, Oid state_oid, bool owned);

/// Upserts every group of `agg`'s delta, in key order. SPI connected.
/// Returns the number of groups written. Raises ERROR on SQL errors
/// (e.g. bigint overflow), which aborts the flush's transaction.
uint64 velostream_upsert_delta(const ViewDesc* desc, const ViewUpsert* upsert,
                               const velostream::engine::ViewAggregator& agg);

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
