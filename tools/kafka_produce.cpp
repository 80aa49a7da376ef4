// velostream-kafka-produce: sends each line of stdin as one message to a
// Kafka topic, spreading lines over the topic's partitions round robin,
// optionally paced, with a progress line on stderr.
//
//   velostream-kafka-produce --brokers HOST:PORT --topic NAME [--rate MSGS_PER_S] [--progress]
//
// Exits non-zero if any message could not be delivered.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

namespace {
long failed = 0;
void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err) ++failed;
}
}  // namespace

int main(int argc, char** argv) {
  std::string brokers, topic;
  double rate = 0;
  bool progress = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--brokers" && i + 1 < argc) brokers = argv[++i];
    else if (a == "--topic" && i + 1 < argc) topic = argv[++i];
    else if (a == "--rate" && i + 1 < argc) rate = atof(argv[++i]);
    else if (a == "--progress") progress = true;
    else {
      fprintf(stderr, "usage: %s --brokers HOST:PORT --topic NAME [--rate MSGS_PER_S] [--progress]\n", argv[0]);
      return 2;
    }
  }
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr)) ||
      rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof(errstr)) ||
      rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", errstr, sizeof(errstr))) {
    fprintf(stderr, "velostream-kafka-produce: %s\n", errstr);
    return 2;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!rk) {
    fprintf(stderr, "velostream-kafka-produce: %s\n", errstr);
    return 1;
  }
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* th = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  int partitions = 1;
  if (rd_kafka_metadata(rk, 0, th, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
      md->topics[0].partition_cnt > 0)
    partitions = md->topics[0].partition_cnt;
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(th);

  auto start = std::chrono::steady_clock::now();
  long sent = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(static_cast<int32_t>(sent % partitions)),
          RD_KAFKA_V_VALUE(const_cast<char*>(line.data()), line.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, 10);
        continue;
      }
      if (err) {
        fprintf(stderr, "velostream-kafka-produce: %s\n", rd_kafka_err2str(err));
        return 1;
      }
      break;
    }
    ++sent;
    rd_kafka_poll(rk, 0);
    if (rate > 0 && sent % 1000 == 0) {
      auto due = start + std::chrono::duration<double>(sent / rate);
      std::this_thread::sleep_until(due);
    }
    if (progress && sent % 20000 == 0) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fprintf(stderr, "\rproduced %ld messages (%.0f msg/s)   ", sent, sent / s);
    }
  }
  rd_kafka_flush(rk, 60000);
  if (progress) fprintf(stderr, "\rproduced %ld messages                \n", sent);
  rd_kafka_destroy(rk);
  if (failed) {
    fprintf(stderr, "velostream-kafka-produce: %ld messages not delivered\n", failed);
    return 1;
  }
  return 0;
}
