// velostream-kafka-mock: an embedded Kafka-protocol broker for the demo and
// the tests, hosting librdkafka's mock cluster on loopback.
//
//   velostream-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]... [--bootstrap-file FILE]
//
// Prints the bootstrap address ("127.0.0.1:PORT,...") on stdout (and to
// FILE), then serves until SIGTERM / SIGINT. Commands on stdin: "down" takes
// every broker down, "up" brings them back (to test brokers that are not
// there yet or go away).
// A mock partition keeps only its last 5 MiB of messages (and at most 100,000
// produce batches) and drops older ones even if nobody has read them (seen
// with librdkafka 2.0.2), so spread large loads over enough partitions.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
volatile sig_atomic_t stop = 0;
void on_signal(int) { stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  int brokers = 1;
  std::vector<std::pair<std::string, int>> topics;
  std::string bootstrap_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--brokers" && i + 1 < argc) {
      brokers = atoi(argv[++i]);
    } else if (a == "--topic" && i + 1 < argc) {
      std::string t = argv[++i];
      size_t colon = t.find(':');
      topics.emplace_back(t.substr(0, colon), colon == std::string::npos ? 1 : atoi(t.c_str() + colon + 1));
    } else if (a == "--bootstrap-file" && i + 1 < argc) {
      bootstrap_file = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--brokers N] [--topic NAME:PARTITIONS]... [--bootstrap-file FILE]\n", argv[0]);
      return 2;
    }
  }
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!rk) {
    fprintf(stderr, "velostream-kafka-mock: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    fprintf(stderr, "velostream-kafka-mock: could not create the mock cluster\n");
    return 1;
  }
  for (const auto& t : topics) {
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, t.first.c_str(), t.second, 1);
    if (err) {
      fprintf(stderr, "velostream-kafka-mock: topic %s: %s\n", t.first.c_str(), rd_kafka_err2str(err));
      return 1;
    }
  }
  const char* bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
  printf("%s\n", bootstraps);
  fflush(stdout);
  if (!bootstrap_file.empty()) {
    std::string tmp = bootstrap_file + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    if (f) {
      fprintf(f, "%s\n", bootstraps);
      fclose(f);
      rename(tmp.c_str(), bootstrap_file.c_str());
    }
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  bool stdin_open = true;
  std::string line;
  while (!stop) {
    if (!stdin_open) {
      usleep(200000);
      continue;
    }
    struct pollfd p = {0, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char buf[256];
    ssize_t n = read(0, buf, sizeof(buf));
    if (n <= 0) {
      stdin_open = false;
      continue;
    }
    line.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = line.find('\n')) != std::string::npos) {
      std::string cmd = line.substr(0, nl);
      line.erase(0, nl + 1);
      for (int b = 1; b <= brokers; ++b) {
        if (cmd == "down") rd_kafka_mock_broker_set_down(mc, b);
        if (cmd == "up") rd_kafka_mock_broker_set_up(mc, b);
      }
      fprintf(stderr, "velostream-kafka-mock: brokers %s\n", cmd.c_str());
    }
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
