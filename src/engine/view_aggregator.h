// Batch-local GROUP BY aggregation for one continuous view on one partition.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "engine/aggregate.h"
#include "engine/batch.h"
#include "engine/predicate.h"

namespace velostream::engine {

/// One GROUP BY expression: a column, or tumble(column, size) when
/// tumble_size > 0 (microseconds; windows aligned on tumble_origin), or
/// the window_start (window_part 1) or window_end (2) of the plan's
/// WindowExpansion, or the start of the row's session (3, the plan's
/// SessionSpec; column is its event time column).
struct KeySpec {
  int column = -1;
  Type type = Type::kInt64;
  int64_t tumble_size = 0;
  int64_t tumble_origin = 0;
  uint8_t window_part = 0;
  /// A window (tumble, or a hop/cumulate bound), not a plain value.
  bool is_window() const { return tumble_size > 0 || window_part != 0; }
};

/// A view's hop() or cumulate() window, as in FROM stream s, hop(s.ts,
/// slide, size) w: every row belongs to several windows of its event time
/// `column` (a kInt64 timestamp, microseconds since 2000-01-01), and is
/// counted once in each (its group keys take each window's start and end in
/// turn). Windows are aligned on `origin` (the Unix epoch, as tumble's).
///  - kHop: the windows [s, s + size) for every s that is a multiple of
///    `step` (the slide) from the origin with ts - size < s <= ts:
///    size / step of them when step divides size.
///  - kCumulate (Flink's cumulative windows): with s = the start of ts's
///    tumbling window of `size`, the windows [s, s + i * step) with
///    ts < s + i * step, i = 1 .. size / step (step divides size).
/// A row whose event time is NULL or infinite belongs to no window (as the
/// STRICT set-returning functions return no row for it); one whose windows
/// fall outside PostgreSQL's timestamps is a row error.
struct WindowExpansion {
  enum class Kind : uint8_t { kNone, kHop, kCumulate };
  Kind kind = Kind::kNone;
  int column = -1;
  int64_t step = 0;
  int64_t size = 0;
  int64_t origin = 0;
};

/// The transactions whose rows a view must not count because they committed
/// before the view was created: PostgreSQL's snapshot of the creating
/// statement (pg_current_snapshot()). A row is skipped if its xid is visible
/// in it: xid < xmin, or xid < xmax and not in xip. xid 0 (no writer: a
/// Kafka row its worker feeds straight from the topic) is never visible.
struct StartSnapshot {
  int64_t xmin = 0, xmax = 0;
  std::vector<int64_t> xip;  ///< sorted
  bool visible(int64_t xid) const;
};

/// The event-time window of a view's groups: a group's window ends
/// (exclusive) at the value of its key part `end_part` (a kInt64 timestamp,
/// microseconds since 2000-01-01, after its tumble rounding) plus
/// `end_offset` microseconds (tumble: the part is the window's start and
/// the offset its size; a window_end key: offset 0). end_part -1: the view
/// has no window, its groups never close.
struct WindowSpec {
  int end_part = -1;
  int64_t end_offset = 0;
};

/// GROUP BY session(ts, gap): the key part `key_part` is the start of the
/// row's session. Events of one value of the other key parts at most `gap`
/// microseconds apart belong to one session (exactly `gap` apart: the same
/// session, as in Flink); a session is the group of its events, its start
/// their least event time, its end their greatest, which the plan's
/// aggregate `end_agg` (max over `column`, added for it) holds. Sessions
/// merge as events arrive, in any order: a group whose start moves is
/// re-keyed, groups that an event joins are combined into the earliest.
/// A NULL event time makes a group with a NULL session.
struct SessionSpec {
  int key_part = -1;
  int column = -1;
  int64_t gap = 0;
  int end_agg = -1;
};

/// What the engine runs for a view: filter, keys, aggregates.
struct ViewPlan {
  std::optional<Predicate> filter;
  std::vector<KeySpec> keys;
  std::vector<AggSpec> aggs;
  StartSnapshot start;
  WindowSpec window;
  WindowExpansion expand;
  SessionSpec session;
};

/// Sets used[c] = 1 for every stream column `plan` reads (filter, keys,
/// aggregates); `used` must have one entry per stream column.
void mark_used_columns(const ViewPlan& plan, std::vector<uint8_t>* used);

/// A decoded group-key value, as handed to the database.
struct KeyValue {
  bool is_null = false;
  int64_t i = 0;
  double f = 0;
  Decimal d;
  std::string_view s;  ///< text: valid until the aggregator is cleared
};

/// Aggregates batches into per-group partial states (the delta since the last
/// flush). Owned by one partition worker; not thread-safe, no locks.
class ViewAggregator {
 public:
  /// Instantiates the plan's aggregates (external ones are cloned).
  explicit ViewAggregator(ViewPlan plan);

  /// Filters `batch` and folds every selected row into its group's partial
  /// states. A selected row whose tumble window is out of range (where
  /// PostgreSQL's date_bin raises an error), or that an aggregate's
  /// prepare() refuses (an argument expression raises), is skipped for every
  /// aggregate and listed in row_errors(). Returns false (and sets error())
  /// if an aggregate cannot fold a row (a numeric sum beyond the engine's 38
  /// digits, an error of an external aggregate's transition function); the
  /// delta is then unusable.
  bool consume(const RecordBatch& batch);

  /// The rows the last consume() skipped: batch row numbers, each with
  /// PostgreSQL's message for it.
  const std::vector<RowError>& row_errors() const { return row_errors_; }

  /// Late events: from now on consume() skips the rows, among those that
  /// pass the view's filter and start snapshot, whose value in column
  /// `column` (a kInt64 event time, microseconds since 2000-01-01; NULL is
  /// never late) is below `before` (the view's watermark minus its allowed
  /// lateness), and lists them in late_rows(). column -1: no row is late.
  void set_late_before(int column, int64_t before) {
    late_column_ = column;
    late_before_ = before;
  }
  /// The batch row numbers the last consume() skipped as late.
  const std::vector<uint32_t>& late_rows() const { return late_rows_; }

  /// Number of group ids in use: the delta's groups (removed groups of a
  /// store keep their ids until it compacts; see live_group_count).
  size_t group_count() const { return keys_.size(); }
  /// Number of groups not removed.
  size_t live_group_count() const { return keys_.size() - removed_count_; }
  /// Group ids in key order (a total order that every partition shares, so
  /// upserts of the same keys by two workers never deadlock).
  std::vector<uint32_t> groups_in_key_order() const;
  /// The ids of the live groups (not removed), ascending.
  std::vector<uint32_t> live_groups() const;
  /// Key part `k` of group `g`.
  KeyValue key(uint32_t g, size_t k) const;
  /// Partial state of aggregate `a` for group `g` (its AggregateFunction's
  /// bytes).
  const void* state_ptr(uint32_t g, size_t a) const { return row(g) + offsets_[a]; }
  /// The state of native aggregate `a` (func != kExternal) of group `g`.
  const AggState& state(uint32_t g, size_t a) const { return *static_cast<const AggState*>(state_ptr(g, a)); }
  /// The SQL result of aggregate `a` for group `g`. Returns false (error()
  /// set) if the aggregate's final function fails.
  bool finalize(uint32_t g, size_t a, Value* out);

  /// Adds the one group of a plan without keys if it is not there yet: an
  /// aggregate query without GROUP BY has its row even without input.
  void add_empty_group() {
    bool added;
    if (plan_.keys.empty()) find_or_add(std::string_view(), &added);
  }

  /// Forgets the delta (after it was merged into the database).
  void clear();
  /// clear(), and frees its memory whatever its size (clear() keeps up to
  /// kKeepBytes for reuse).
  void release() { clear(true); }

  // ---- Partition-owned state -------------------------------------------
  // A worker that owns every group of a view (its rows are routed by a key
  // column) keeps the view's full state in a second ViewAggregator and
  // merges each flush's delta into it, so it knows which groups are new and
  // writes final values without reading the result table.

  /// The end of group g's window (WindowSpec; microseconds, saturating;
  /// a session's: its last event + gap + 1, the first time no event of it
  /// may have): false if the plan has no window or the group's window key is
  /// NULL.
  bool window_end(uint32_t g, int64_t* end) const;
  /// Appends to `out` the groups (not removed) whose window ends at or
  /// before `limit`, in key order: those that are closed once the watermark
  /// minus the allowed lateness reaches `limit`.
  void groups_ending_by(int64_t limit, std::vector<uint32_t>* out) const;
  /// Removes groups[0..n) (closed windows leaving the state): they are no
  /// longer found, merged, encoded or counted live. Once removed groups
  /// outnumber the live ones (and at least kCompactMin), the aggregator
  /// compacts: it re-encodes the live groups, clears and loads them back, so
  /// their memory (states, keys, what external aggregates hold) is freed;
  /// every group id then changes. Returns false (error() set) if an external
  /// aggregate's serialise or deserialise function fails while compacting;
  /// the aggregator is then unusable.
  /// may_compact false: never compact now (a delta about to be merged and
  /// cleared).
  bool remove_groups(const uint32_t* groups, size_t n, bool may_compact = true);

  // ---- Bounded state (views without windows) ---------------------------
  /// Approximate bytes this aggregator holds: its group rows, keys, index
  /// and recency marks, removed groups included until it compacts (not
  /// what external aggregates hold outside their states).
  size_t memory_bytes() const;
  /// Appends to `out` the least recently merged live groups to evict so
  /// that about `keep_bytes` of memory_bytes() remain, coldest first.
  void coldest_groups(size_t keep_bytes, std::vector<uint32_t>* out) const;
  /// Re-encodes the live groups and loads them back into cleared memory, so
  /// removed groups' memory is freed; every group id changes. False (error()
  /// set) if an external aggregate's serialise function fails.
  bool compact();
  /// Appends to `out` the ids of `delta`'s live groups whose keys this
  /// aggregator does not hold.
  void missing_keys(const ViewAggregator& delta, std::vector<uint32_t>* out) const;
  /// The encoded key of group g.
  std::string_view group_key(uint32_t g) const { return keys_[g]; }

  // ---- Exchanged groups ------------------------------------------------
  // A view whose groups several partitions' rows reach, but that needs each
  // group in one worker (emit final, retention, sessions), exchanges them:
  // each worker aggregates its rows into its delta as usual, sends the
  // groups another partition owns there (encode_groups) and merges the ones
  // it receives into its delta (load_groups into a scratch aggregator, then
  // merge) -- local-global aggregation, as Flink's two-phase aggregation.

  /// The partition, in [0, nparts), that owns group g: XXH3 of its encoded
  /// key (a total function of the group's values, the same in every
  /// process), with a session plan's session start left out, so every
  /// session of a key has one owner that can merge them.
  uint32_t owner_partition(uint32_t g, uint32_t nparts) const;

  /// Merges every group of `delta` (same plan) into this one. On return
  /// `groups` holds this aggregator's ids of the merged groups in key order
  /// and `created[i]` is 1 where groups[i] did not exist before. Returns
  /// false (error() set) if a numeric sum overflows 38 digits or a count
  /// exceeds bigint; this aggregator is then unusable.
  bool merge(const ViewAggregator& delta, std::vector<uint32_t>* groups, std::vector<uint8_t>* created);

  /// Sessions (SessionSpec): the keys of groups whose rows were written
  /// before the last merge() and that it merged into another session or
  /// re-keyed (their start moved): their result rows must go (the merged
  /// groups are `created` again under their new keys). Encoded keys; decode
  /// them with key_of().
  const std::vector<std::string>& gone_keys() const { return gone_keys_; }
  /// Key part `part` of encoded key `key` (as key(g, part) decodes a group's).
  KeyValue key_of(std::string_view key, size_t part) const;

  /// Appends the keys and partial states of groups[0..n) to `out` in a compact
  /// binary form ("VSG2": u32 magic, u32 count, u32 aggregates, then per
  /// group u32 key length, key bytes, and each aggregate's state as its
  /// AggregateFunction::serialize writes it; host byte order. For
  /// the native ones: the count, then the sum / extreme, integers as zigzag
  /// LEB128 varints, float8 and numeric raw). A session plan's ("VSS2" /
  /// "VSS3") first lists `tombstones` (u32 count, then u32 length and bytes
  /// of each key): groups load_groups removes before it loads the others.
  /// Returns false (error() set) if an external aggregate's serialise
  /// function fails.
  bool encode_groups(const uint32_t* groups, size_t n, std::string* out,
                     const std::vector<std::string>* tombstones = nullptr) const;
  /// All groups, for a snapshot.
  bool encode_all(std::string* out) const;
  /// A snapshot in chunks: encodes (as encode_groups) the live groups from
  /// group id *next on until the encoding reaches `max_bytes` (at least one
  /// group), and sets *next past the last one encoded; *next ==
  /// group_count() after the last chunk. So no snapshot value nears
  /// PostgreSQL's 1 GB limit on a bytea.
  bool encode_chunk(uint32_t* next, size_t max_bytes, std::string* out) const;
  /// Reads bytes written by encode_groups: each group's states replace the
  /// stored ones (later writes win). Returns false with `error` set if the
  /// bytes are corrupt or of another plan's shape: keys must have this plan's
  /// parts (NULL flags 0 or 1, complete values, valid numerics, nothing
  /// after), counts must be bigints >= 0, int8 sums within count * 2^63,
  /// int8 extremes int8s, numerics valid (Decimal::valid). Groups read before
  /// the error stay loaded.
  bool load_groups(const char* data, size_t len, std::string* error);

  // ---- Shared groups ---------------------------------------------------
  // A view whose groups several workers update keeps each group's partial
  // states in the database as one bytea: every aggregate's serialize bytes
  // in turn. These work on such bytes with this aggregator's functions.

  /// Appends group g's states (every aggregate's serialize bytes) to `out`.
  bool group_state_bytes(uint32_t g, std::string* out) const;
  /// Combines the states of `b` into those of `a` (both as group_state_bytes
  /// writes them) and writes the result to `out`.
  bool merge_state_bytes(std::string_view a, std::string_view b, std::string* out);
  /// The SQL results of states `s` (group_state_bytes form), one per
  /// aggregate, into out[0..aggs).
  bool finalize_state_bytes(std::string_view s, Value* out);
  /// Frees what merge_state_bytes and finalize_state_bytes left in the
  /// aggregates' memory (call after each flush).
  void reset_scratch();

  const ViewPlan& plan() const { return plan_; }
  uint64_t rows_in() const { return rows_in_; }          ///< rows seen since clear()
  /// Adds `n` to rows_in() (a delta loaded back from its encoding, which
  /// does not hold the count).
  void add_rows_in(uint64_t n) { rows_in_ += n; }
  uint64_t rows_selected() const { return rows_selected_; }  ///< rows that passed the filter
  const std::string& error() const { return error_; }

 private:
  // k: the row's index in the expanded selection (its window's start and
  // end in win_start_[k], win_end_[k]).
  bool encode_key(const RecordBatch& b, size_t row, size_t k, std::string* out) const;
  void clear(bool release);  // clear(); release: free the memory, whatever its size
  // True unless group g was removed (remove_groups, a session merge).
  bool is_live(uint32_t g) const { return removed_.empty() || !removed_[g]; }
  // A session plan's plain key of encoded key `key`: the key with 0 as its
  // session start (sessions_' index).
  std::string session_pk(std::string_view key) const;
  // Appends group g's key, scales and states (encode_groups' per group part).
  bool encode_group(uint32_t g, std::string* out) const;
  // Sessions (view_aggregator_sessions.cpp).
  // The byte offset of key part `part`'s value in encoded key `key`.
  size_t part_offset(std::string_view key, size_t part) const;
  // The session start of group g (its key's session part; false: NULL).
  bool session_start(uint32_t g, int64_t* start) const;
  // Places the events [s, e] of plain key `pk` (an encoded key whose session
  // part holds 0, at byte offset `off`) into this aggregator's sessions:
  // merges every session within gap of it into the earliest (combining
  // their states, redirecting redirect_), re-keys it when its start moves,
  // or adds a session. track: note in gone_keys_ the keys of groups not
  // fresh_ that leave or move, and mark the result fresh_. Returns the
  // group, or UINT32_MAX with error_ set if combining failed.
  uint32_t place_session(std::string_view pk, size_t off, int64_t s, int64_t e, bool track);
  // Sets group g's session end from its end aggregate and, if it was just
  // added, lists it among its key's sessions (load_groups).
  void index_session(uint32_t g, bool added);
  bool consume_sessions(const RecordBatch& b);
  bool merge_sessions(const ViewAggregator& delta, std::vector<uint32_t>* groups, std::vector<uint8_t>* created);
  // Replaces sel_ by one entry per (row, window) of plan_.expand, setting
  // win_start_ / win_end_; rows without a window leave, those whose windows
  // are out of range go to row_errors_. Returns the rows that left.
  size_t expand_windows(const RecordBatch& b);
  bool valid_key(std::string_view key) const;  // as encode_key can write for plan_
  uint32_t find_or_add(std::string_view key, bool* added, const int16_t* scales = nullptr);
  /// scales: the display scale of each numeric key part (NULL: as stored).
  uint32_t add_group(std::string_view key, const int16_t* scales);
  char* row(uint32_t g) { return reinterpret_cast<char*>(states_.data()) + static_cast<size_t>(g) * stride_; }
  const char* row(uint32_t g) const {
    return reinterpret_cast<const char*>(states_.data()) + static_cast<size_t>(g) * stride_;
  }

  // The most memory (states, keys) clear() keeps for reuse, in bytes.
  static constexpr size_t kKeepBytes = 16 << 20;
  // The fewest removed groups that make remove_groups() compact.
  static constexpr size_t kCompactMin = 4096;

  // 16-byte units, so every state is aligned as AggState (__int128) needs.
  struct alignas(16) Unit {
    char bytes[16];
  };

  ViewPlan plan_;
  std::vector<std::unique_ptr<AggregateFunction>> fns_;  // one per aggregate, this aggregator's own
  std::vector<size_t> offsets_;      // byte offset of each aggregate's state in a group's row
  size_t stride_ = 0;                // bytes per group row (a multiple of 16)
  std::vector<std::string_view> keys_;  // encoded keys, each group's, in key_bytes_
  Arena key_bytes_;                     // their bytes: blocks that never move, reused after clear()
  // The groups by key: a set of group ids hashed and compared through keys_
  // (4 bytes a slot, where a map from the key's view took 24).
  struct GroupHash {
    using is_transparent = void;
    const std::vector<std::string_view>* keys;
    size_t operator()(uint32_t g) const { return hash((*keys)[g]); }
    size_t operator()(std::string_view k) const { return hash(k); }
    // XXH3 (xxhash, Debian's libxxhash-dev, inlined): a few nanoseconds for
    // the short encoded keys; absl::Hash<string_view> in Debian's abseil
    // calls libstdc++'s _Hash_bytes, 6% of a worker's time in issue 10's
    // profile. absl::Hash mixes the result, as the table expects of its hashes.
    static size_t hash(std::string_view k) { return absl::Hash<uint64_t>{}(XXH3_64bits(k.data(), k.size())); }
  };
  struct GroupEq {
    using is_transparent = void;
    const std::vector<std::string_view>* keys;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, std::string_view b) const { return (*keys)[a] == b; }
    bool operator()(std::string_view a, uint32_t b) const { return a == (*keys)[b]; }
  };
  absl::flat_hash_set<uint32_t, GroupHash, GroupEq> index_{0, GroupHash{&keys_}, GroupEq{&keys_}};
  std::vector<Unit> states_;         // group rows: group g's at g * stride_
  // Numeric key parts are grouped by value (1.5 = 1.50) but shown with the
  // scale of the group's first value, as PostgreSQL's GROUP BY shows it.
  std::vector<int> numeric_part_;    // per key part: its index among the numeric ones, or -1
  int nnumeric_ = 0;
  std::vector<int16_t> key_scales_;  // groups x numeric parts; -1: as stored
  mutable std::vector<int16_t> row_scales_;  // encode_key's, for the row being keyed
  // Per-batch scratch, kept to avoid allocating per batch.
  std::vector<uint8_t> truth_;
  std::deque<std::vector<uint8_t>> scratch_;
  std::vector<uint32_t> sel_;        // selected rows
  std::vector<uint32_t> group_of_;   // group id of each selected row
  std::vector<uint32_t> expanded_;   // expand_windows' scratch
  std::vector<int64_t> win_start_, win_end_;  // each expanded entry's window
  std::vector<uint8_t> filter_truth_;  // an aggregate's FILTER, per row
  std::vector<uint32_t> filter_sel_, filter_groups_;  // the rows it lets through
  std::string key_buf_;
  std::vector<RowError> row_errors_;
  int late_column_ = -1;             // set_late_before
  int64_t late_before_ = 0;
  std::vector<uint32_t> late_rows_;
  std::vector<uint8_t> dropped_;     // rows prepare() refused, per batch row
  std::vector<uint8_t> removed_;     // per group id: removed by remove_groups (empty: none ever)
  size_t removed_count_ = 0;
  std::vector<uint32_t> touched_;    // per group: the merge() that last touched it (epoch_)
  uint32_t epoch_ = 0;
  // Sessions: the session groups of each plain key (its encoded key with 0
  // as session start), each group's last event time, merged-away groups'
  // survivors (consume), groups created or re-keyed by the current merge,
  // and the keys of written groups that left (gone_keys()).
  absl::flat_hash_map<std::string, std::vector<uint32_t>> sessions_;
  std::vector<int64_t> session_end_;
  std::vector<uint32_t> redirect_;
  std::vector<uint8_t> fresh_;
  std::vector<std::string> gone_keys_;
  std::string pk_buf_;
  uint64_t rows_in_ = 0, rows_selected_ = 0;
  mutable std::string error_;
};

}  // namespace velostream::engine
