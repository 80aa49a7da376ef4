#include "kafka/consumer.h"

#include <cstdio>

namespace velostream::kafka {

Consumer::~Consumer() {
  if (queue_) rd_kafka_queue_destroy(queue_);
  if (topic_handle_) rd_kafka_topic_destroy(topic_handle_);
  if (rk_) {
    rd_kafka_assign(rk_, nullptr);
    rd_kafka_destroy(rk_);
  }
}

void Consumer::on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* self = static_cast<Consumer*>(opaque);
  self->last_error_ = std::string(rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))) + ": " + reason;
}

// Runs on librdkafka's own threads: no PostgreSQL call, no allocation from
// PostgreSQL; stderr reaches the server log when logging_collector is off.
void Consumer::on_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 3) fprintf(stderr, "velostream kafka %s: %s\n", fac, buf);
}

bool Consumer::open(const std::vector<std::pair<std::string, std::string>>& conf, const std::string& topic,
                    std::string* error) {
  char errstr[512];
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  // Prefetch up to 1M messages (librdkafka's default is 100k, still bounded
  // by queued.max.messages.kbytes, 64 MB): a worker takes no messages while
  // it flushes, and with 100k queued it drained them in ~25 ms and then
  // waited for fetches, idle ~80% of the time (bench/kafka_profile.sh).
  // The server's options may set it otherwise.
  rd_kafka_conf_set(c, "queued.min.messages", "1000000", errstr, sizeof(errstr));
  for (const auto& kv : conf) {
    if (rd_kafka_conf_set(c, kv.first.c_str(), kv.second.c_str(), errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      *error = errstr;
      rd_kafka_conf_destroy(c);
      return false;
    }
  }
  rd_kafka_conf_set(c, "enable.auto.commit", "false", errstr, sizeof(errstr));
  rd_kafka_conf_set(c, "enable.auto.offset.store", "false", errstr, sizeof(errstr));
  rd_kafka_conf_set(c, "enable.partition.eof", "false", errstr, sizeof(errstr));
  rd_kafka_conf_set(c, "auto.offset.reset", "error", errstr, sizeof(errstr));
  // Caught-up consumers get a fetch response (and a fresh high watermark) at
  // least this often; velostream.wait() relies on it.
  rd_kafka_conf_set(c, "fetch.wait.max.ms", "200", errstr, sizeof(errstr));
  rd_kafka_conf_set_opaque(c, this);
  rd_kafka_conf_set_error_cb(c, on_error);
  rd_kafka_conf_set_log_cb(c, on_log);
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof(errstr));
  if (rk_ == nullptr) {
    *error = errstr;
    return false;
  }
  topic_ = topic;
  topic_handle_ = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
  queue_ = rd_kafka_queue_get_consumer(rk_);
  return true;
}

int Consumer::partition_count(int timeout_ms, std::string* error) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, topic_handle_, &md, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = rd_kafka_err2str(err);
    return -1;
  }
  int n = -1;
  if (md->topic_cnt == 1) {
    if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) *error = rd_kafka_err2str(md->topics[0].err);
    else n = md->topics[0].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

bool Consumer::assign(const std::vector<std::pair<int32_t, int64_t>>& partitions, std::string* error) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (const auto& p : partitions) rd_kafka_topic_partition_list_add(list, topic_.c_str(), p.first)->offset = p.second;
  rd_kafka_resp_err_t err = rd_kafka_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = rd_kafka_err2str(err);
    return false;
  }
  assigned_ = partitions;
  return true;
}

size_t Consumer::consume(rd_kafka_message_t** out, size_t max, int timeout_ms) {
  ssize_t n = rd_kafka_consume_batch_queue(queue_, timeout_ms, out, max);
  return n < 0 ? 0 : static_cast<size_t>(n);
}

int64_t Consumer::high_watermark(int32_t partition) {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(rk_, topic_.c_str(), partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return -1;
  return high;
}

bool Consumer::watermarks(int32_t partition, int timeout_ms, int64_t* low, int64_t* high, std::string* error) {
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk_, topic_.c_str(), partition, low, high, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = rd_kafka_err2str(err);
    return false;
  }
  return true;
}

bool Consumer::reposition(int32_t partition, int64_t offset, std::string* error) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic_.c_str(), partition)->offset = offset;
  rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk_, list);
  if (e == nullptr) e = rd_kafka_incremental_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != nullptr) {
    *error = rd_kafka_error_string(e);
    rd_kafka_error_destroy(e);
    return false;
  }
  for (auto& a : assigned_)
    if (a.first == partition) a.second = offset;
  return true;
}

void Consumer::set_paused(bool paused) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(assigned_.size()));
  for (const auto& p : assigned_) rd_kafka_topic_partition_list_add(list, topic_.c_str(), p.first);
  if (paused) rd_kafka_pause_partitions(rk_, list);
  else rd_kafka_resume_partitions(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
}

std::string Consumer::take_error() {
  std::string e;
  e.swap(last_error_);
  return e;
}

}  // namespace velostream::kafka
