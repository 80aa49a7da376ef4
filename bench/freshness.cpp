// Freshness load generator (issue 10): holds a steady input rate into a
// stream and measures, per commit (or per produced batch), the time from the
// commit returning (or the broker acknowledging every message of the batch)
// until a continuous view shows all of its rows.
//
//   velostream-freshness --conninfo STR --rate ROWS_PER_S --seconds S
//                        [--commit-ms MS] [--kafka BROKERS --topic T]
//
// The database must have a stream `fr (batch bigint, seq bigint, origin text,
// delay int)` (a local stream, or a Kafka stream over topic T in CSV) and the
// continuous view `fr_batches AS SELECT batch, count(*) AS n FROM fr GROUP BY
// batch` (bench/freshness_bench.sh creates them, and other views beside).
//
// Every --commit-ms (default 20) the writer sends rate * commit-ms / 1000
// rows: a COPY into the stream in one transaction (libpqxx stream_to), or as
// many Kafka messages flushed until acknowledged. A poller on its own
// connection reads fr_batches every 2 ms and records when each batch's count
// is complete. When the writer cannot keep the schedule (the database or the
// broker is the bound), the achieved rate says so. Prints one line of
// key=value pairs: target and achieved rate, batches, and the freshness
// p50 / p99 / max in milliseconds.
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string conninfo;
  double rate = 10000;
  double seconds = 10;
  int commit_ms = 20;
  std::string brokers, topic;  // Kafka mode when set
};

const char* kOrigins[] = {"ATL", "ORD", "DFW", "LAX", "DEN", "SFO", "PHX", "LAS", "IAH", "MSP"};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The batches' commit / acknowledgement times and first-visible times.
struct Timeline {
  std::mutex mu;
  std::vector<Clock::time_point> committed;  // index: batch - 1
  std::vector<Clock::time_point> visible;
  std::vector<uint8_t> seen;
  std::atomic<long> last_committed{0};
  std::atomic<bool> writer_done{false};
};

// Kafka delivery reports: counts acknowledged messages and errors.
struct Delivery {
  std::atomic<long> acked{0}, failed{0};
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  Delivery* d = static_cast<Delivery*>(opaque);
  if (m->err) d->failed++;
  else d->acked++;
}

// Sends batches on schedule until opt.seconds have passed.
void write_batches(const Options& opt, long rows_per_batch, Timeline* tl, double* achieved) {
  const long batches = (long)tl->seen.size();
  pqxx::connection conn(opt.conninfo);
  rd_kafka_t* producer = nullptr;
  Delivery delivery;
  if (!opt.brokers.empty()) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", opt.brokers.c_str(), err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &delivery);
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (producer == nullptr) {
      fprintf(stderr, "producer: %s\n", err);
      exit(1);
    }
  }
  const Clock::time_point start = Clock::now();
  long seq = 0;
  std::string line;
  for (long b = 1; b <= batches; ++b) {
    std::this_thread::sleep_until(start + std::chrono::milliseconds(opt.commit_ms * (b - 1)));
    if (producer == nullptr) {
      pqxx::work tx(conn);
      pqxx::stream_to out(tx, "fr", std::vector<std::string>{"batch", "seq", "origin", "delay"});
      for (long i = 0; i < rows_per_batch; ++i, ++seq)
        out << std::make_tuple(b, seq, kOrigins[seq % 10], (int)(seq % 97) - 20);
      out.complete();
      tx.commit();
    } else {
      const long want = delivery.acked + rows_per_batch;
      for (long i = 0; i < rows_per_batch; ++i, ++seq) {
        line = std::to_string(b) + "," + std::to_string(seq) + "," + kOrigins[seq % 10] + "," +
               std::to_string((int)(seq % 97) - 20);
        while (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(opt.topic.c_str()),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_VALUE(const_cast<char*>(line.data()), line.size()),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
          rd_kafka_poll(producer, 1);
      }
      while (delivery.acked + delivery.failed < want) rd_kafka_poll(producer, 1);
      if (delivery.failed > 0) {
        fprintf(stderr, "%ld messages were not delivered\n", (long)delivery.failed);
        exit(1);
      }
    }
    {
      std::lock_guard<std::mutex> g(tl->mu);
      tl->committed[b - 1] = Clock::now();
    }
    tl->last_committed = b;
  }
  const double secs = ms_between(start, Clock::now()) / 1000;
  *achieved = (double)(rows_per_batch * batches) / secs;
  if (producer != nullptr) rd_kafka_destroy(producer);
  tl->writer_done = true;
}

// Reads fr_batches until every batch is complete (or 60 s after the writer).
void poll_view(const Options& opt, long rows_per_batch, Timeline* tl) {
  pqxx::connection conn(opt.conninfo);
  conn.prepare("complete", "SELECT batch FROM fr_batches WHERE batch >= $1 AND n = $2");
  long lowest = 1;  // every batch below is seen
  Clock::time_point writer_end{};
  for (;;) {
    const long committed = tl->last_committed;
    if (committed >= lowest) {
      pqxx::nontransaction tx(conn);
      pqxx::result r = tx.exec_prepared("complete", lowest, rows_per_batch);
      const Clock::time_point now = Clock::now();
      std::lock_guard<std::mutex> g(tl->mu);
      const long recorded = tl->last_committed;  // batches whose commit time is known
      for (const auto& row : r) {
        const long b = row[0].as<long>();
        if (b < 1 || b > recorded || tl->seen[b - 1]) continue;
        tl->seen[b - 1] = 1;
        tl->visible[b - 1] = now;
      }
      while (lowest <= (long)tl->seen.size() && tl->seen[lowest - 1]) ++lowest;
    }
    if (tl->writer_done) {
      if (lowest > (long)tl->seen.size()) return;
      if (writer_end == Clock::time_point{}) writer_end = Clock::now();
      if (ms_between(writer_end, Clock::now()) > 60000) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, (size_t)(p * (double)(v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--conninfo") opt.conninfo = val();
    else if (a == "--rate") opt.rate = atof(val().c_str());
    else if (a == "--seconds") opt.seconds = atof(val().c_str());
    else if (a == "--commit-ms") opt.commit_ms = atoi(val().c_str());
    else if (a == "--kafka") opt.brokers = val();
    else if (a == "--topic") opt.topic = val();
    else {
      fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (opt.commit_ms <= 0 || opt.rate <= 0 || opt.seconds <= 0 || (!opt.brokers.empty() && opt.topic.empty())) {
    fprintf(stderr, "usage: velostream-freshness --conninfo STR --rate N --seconds S [--commit-ms MS] "
                    "[--kafka BROKERS --topic T]\n");
    return 2;
  }
  const long rows_per_batch = std::max(1L, (long)(opt.rate * opt.commit_ms / 1000));
  const long batches = std::max(1L, (long)(opt.seconds * 1000 / opt.commit_ms));
  Timeline tl;
  tl.committed.resize(batches);
  tl.visible.resize(batches);
  tl.seen.assign(batches, 0);
  double achieved = 0;
  try {
    std::thread writer([&] { write_batches(opt, rows_per_batch, &tl, &achieved); });
    std::thread poller([&] { poll_view(opt, rows_per_batch, &tl); });
    writer.join();
    poller.join();
  } catch (const std::exception& e) {
    fprintf(stderr, "freshness: %s\n", e.what());
    return 1;
  }
  std::vector<double> fresh;
  long missing = 0;
  for (size_t b = 0; b < tl.seen.size(); ++b) {
    if (tl.seen[b]) fresh.push_back(ms_between(tl.committed[b], tl.visible[b]));
    else ++missing;
  }
  printf("target_rate=%.0f achieved_rate=%.0f batches=%zu rows_per_batch=%ld missing=%ld p50_ms=%.1f p99_ms=%.1f "
         "max_ms=%.1f\n",
         opt.rate, achieved, tl.seen.size(), rows_per_batch, missing, percentile(fresh, 0.5), percentile(fresh, 0.99),
         percentile(fresh, 1.0));
  return missing == 0 ? 0 : 1;
}
