// A librdkafka consumer for one stream partition worker: explicit partition
// assignment at stored offsets (no consumer-group rebalancing, which stalls
// for the session timeout after a kill), batch consumption, watermarks.
// Free of PostgreSQL: librdkafka's threads never reach PostgreSQL, and the
// callbacks that run on the caller's thread only record what happened.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace velostream::kafka {

/// Kafka's "next offset" sentinels for a partition without a stored offset.
constexpr int64_t kOffsetEarliest = RD_KAFKA_OFFSET_BEGINNING;
constexpr int64_t kOffsetLatest = RD_KAFKA_OFFSET_END;

class Consumer {
 public:
  Consumer() = default;
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  /// Creates the client with librdkafka properties `conf` (bootstrap.servers
  /// and anything else, e.g. security.protocol) for `topic`. Returns false
  /// with librdkafka's message in *error for an unknown property or value.
  /// auto.offset.reset is always "error": a position outside the partition's
  /// log (retention deleted it, the topic was recreated) is reported as a
  /// RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET message for the caller to handle,
  /// never skipped silently; fetching of that partition stops until it is
  /// assigned again.
  bool open(const std::vector<std::pair<std::string, std::string>>& conf, const std::string& topic,
            std::string* error);

  /// Number of partitions of the topic, from a metadata request that waits up
  /// to timeout_ms; -1 with *error when brokers or topic are unavailable.
  int partition_count(int timeout_ms, std::string* error);

  /// Replaces the assignment: each (partition, next offset) pair, the offset
  /// being a real offset or kOffsetEarliest / kOffsetLatest.
  bool assign(const std::vector<std::pair<int32_t, int64_t>>& partitions, std::string* error);

  /// Waits up to timeout_ms for messages and returns up to `max` of them in
  /// `out` (the caller destroys each with rd_kafka_message_destroy).
  size_t consume(rd_kafka_message_t** out, size_t max, int timeout_ms);

  /// Last known high watermark of a partition (the offset after the last
  /// message), from fetch responses; -1 when not known yet.
  int64_t high_watermark(int32_t partition);

  /// Asks the partition's leader for its log start (`*low`, the first offset
  /// still kept) and end (`*high`) offsets, waiting up to timeout_ms. Returns
  /// false with librdkafka's message in *error when it does not answer. (It
  /// can block past its timeout while every broker is down: call it only
  /// right after a broker answered, e.g. on an out-of-range error.)
  bool watermarks(int32_t partition, int timeout_ms, int64_t* low, int64_t* high, std::string* error);

  /// Restarts fetching of one assigned partition at `offset` (after fetching
  /// stopped on an AUTO_OFFSET_RESET error, when a seek is refused): removes
  /// it from the assignment and adds it back at `offset`
  /// (rd_kafka_incremental_unassign / _assign). Other partitions keep their
  /// positions. Returns false with librdkafka's message in *error.
  bool reposition(int32_t partition, int64_t offset, std::string* error);

  /// Pauses or resumes fetching of every assigned partition.
  void set_paused(bool paused);

  /// The last client-level error (e.g. all brokers down) since the previous
  /// call, or an empty string. Set by librdkafka's error callback, which runs
  /// inside consume() on the caller's thread.
  std::string take_error();

 private:
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  static void on_log(const rd_kafka_t* rk, int level, const char* fac, const char* buf);

  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* topic_handle_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  std::string topic_;
  std::vector<std::pair<int32_t, int64_t>> assigned_;
  std::string last_error_;
};

}  // namespace velostream::kafka
