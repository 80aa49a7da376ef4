// velostream-kafka-drain: the baseline of bench/kafka_bench.sh. A bare
// librdkafka consumer (the same assign-and-batch-consume path as the partition
// workers, src/kafka/consumer.cpp) that reads COUNT messages of a topic from
// the beginning and does nothing with them; prints messages per second.
//
//   velostream-kafka-drain --brokers HOST:PORT --topic NAME --count COUNT
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kafka/consumer.h"

int main(int argc, char** argv) {
  std::string brokers, topic;
  long count = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--brokers") brokers = argv[i + 1];
    else if (a == "--topic") topic = argv[i + 1];
    else if (a == "--count") count = atol(argv[i + 1]);
  }
  if (brokers.empty() || topic.empty() || count <= 0) {
    fprintf(stderr, "usage: %s --brokers HOST:PORT --topic NAME --count COUNT\n", argv[0]);
    return 2;
  }
  velostream::kafka::Consumer c;
  std::string err;
  if (!c.open({{"bootstrap.servers", brokers}, {"group.id", "velostream-drain"}}, topic, &err)) {
    fprintf(stderr, "velostream-kafka-drain: %s\n", err.c_str());
    return 1;
  }
  int n = c.partition_count(10000, &err);
  if (n <= 0) {
    fprintf(stderr, "velostream-kafka-drain: %s\n", err.c_str());
    return 1;
  }
  std::vector<std::pair<int32_t, int64_t>> all;
  for (int32_t p = 0; p < n; ++p) all.emplace_back(p, velostream::kafka::kOffsetEarliest);
  auto start = std::chrono::steady_clock::now();
  c.assign(all, &err);
  rd_kafka_message_t* msgs[1024];
  long got = 0;
  size_t bytes = 0;
  while (got < count) {
    size_t k = c.consume(msgs, 1024, 1000);
    for (size_t i = 0; i < k; ++i) {
      if (!msgs[i]->err) {
        ++got;
        bytes += msgs[i]->len;
      }
      rd_kafka_message_destroy(msgs[i]);
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::minutes(10)) break;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  printf("%ld messages (%zu bytes) in %.3f s: %.0f msg/s\n", got, bytes, s, got / s);
  return got == count ? 0 : 1;
}
