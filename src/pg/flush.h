// Merging a view's aggregated delta into its tables: one upsert statement per
// view and flush, with the delta passed as arrays (one element per group).
#pragma once

#include "engine/view_aggregator.h"
#include "pg/pg.h"
#include "pg/translate.h"

/// The prepared upsert of one continuous view.
struct ViewUpsert {
  SPIPlanPtr plan;   ///< kept with SPI_keepplan
  int nparams;
  Oid* elem_types;   ///< element type of each array parameter
};

/// Builds and prepares the upsert of view `view_oid` (result table) and
/// `state_oid` (partial states, or InvalidOid). Call inside a transaction
/// with SPI connected; the plan is kept across transactions.
ViewUpsert* velostream_prepare_upsert(const ViewDesc* desc, Oid view_oid, Oid state_oid);

/// Upserts every group of `agg`'s delta, in key order. SPI connected.
/// Returns the number of groups written. Raises ERROR on SQL errors
/// (e.g. bigint overflow), which aborts the flush's transaction.
uint64 velostream_upsert_delta(const ViewDesc* desc, const ViewUpsert* upsert,
                               const velostream::engine::ViewAggregator& agg);
