// velostream-faults: the fault-injection driver (run it through test/faults/run.sh).
//
// Real flights flow into a COPY stream (a loader thread: each transaction
// COPYs a chunk into the stream and the same rows into faults.copy_plain, and
// records the chunk in faults.chunks) and into a Kafka topic read by a Kafka
// stream (a producer thread). Several continuous views run on each stream.
// The run is a sequence of cycles. In each cycle the driver lets data flow for
// a few seconds while it injects faults at random moments (std::mt19937 seeded
// with --seed): kill -9 of a partition worker or of the launcher,
// pg_terminate_backend of the launcher, an immediate shutdown and start, the
// brokers down and up, a view dropped and re-created, ALTER SERVER, a raising
// trigger on a view's table. Then it stops the data, waits until every view
// has caught up and compares every view with its batch query over the
// committed rows: EXCEPT ALL both ways, and per group the count difference
// (events lost, events doubled).
//
// Both streams have an event time (ts, watermark delay 30 minutes), and
// event-time views (emit final, retention) beside the others: they are
// checked once the watermarks converged, against their batch query over the
// windows the watermark closed (emit final) or retention keeps. The flights
// are in time order, and each pass over them is shifted 32 days later, so
// no event may be late.
//
// What committed is known exactly: a chunk's transaction either commits the
// stream rows and the oracle rows together or neither; one whose COMMIT
// outcome is unknown (the connection died) is resolved by looking for its
// chunk number after reconnecting. For Kafka the oracle is what the topic
// holds: after each cycle the driver reads the new messages back with its own
// consumer and loads them into faults.k_plain.
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <pqxx/pqxx>
#include <pqxx/tablewriter>
#pragma GCC diagnostic pop

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point t0 = Clock::now();

double elapsed() { return std::chrono::duration<double>(Clock::now() - t0).count(); }
void sleep_ms(long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::mutex out_mu;
std::string vformat(const char* fmt, va_list ap) {
  char buf[4096];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  return buf;
}
// A progress line, prefixed with the time since the start.
void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vformat(fmt, ap);
  va_end(ap);
  std::lock_guard<std::mutex> g(out_mu);
  printf("[%6.1fs] %s\n", elapsed(), s.c_str());
  fflush(stdout);
}
int failures = 0;
// PASS / FAIL lines start the line: test/run_all.sh counts them.
void verdict(bool ok, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vformat(fmt, ap);
  va_end(ap);
  std::lock_guard<std::mutex> g(out_mu);
  printf("%s: %s\n", ok ? "PASS" : "FAIL", s.c_str());
  fflush(stdout);
  if (!ok) ++failures;
}

// ---------------------------------------------------------------- options

struct Options {
  std::string host = "/tmp/velostream-faults";
  int port = 55450;
  std::string pgbin = "/usr/lib/postgresql/15/bin", pgdata, pglog;
  std::string brokers, mock_fifo, topic = "flights";
  int topic_partitions = 16;
  std::string data;
  std::string profile = "short";
  unsigned seed = 1;
  // set by the profile, each can be overridden
  int cycles = 0, faults_per_cycle = 0, rows = 0, min_faults = 0;
  int kafka_rate = 0;           // messages per second
  int copy_partitions = 4, kafka_workers = 4;
  std::set<std::string> only;   // fault types to draw from (default: all)
  double phase_min = 3, phase_max = 5;  // seconds of data flow per cycle, faults inside
  int catchup_timeout = 90;     // seconds a cycle waits for the views
  int liveness_timeout = 20;    // seconds a sibling view gets to progress past a raising trigger
  int converge_timeout = 20;    // seconds the event-time views get to close their windows through the watermark
};
Options opt;

const char* kFaultNames[] = {"kill_worker",  "kill_launcher", "terminate_launcher", "immediate_restart",
                             "broker_outage", "recreate_view", "alter_server",       "raising_trigger"};
enum Fault { KillWorker, KillLauncher, TerminateLauncher, ImmediateRestart, BrokerOutage, RecreateView, AlterServer,
             RaisingTrigger, kFaultTypes };

// ---------------------------------------------------------------- database

std::string conninfo() {
  return "host=" + opt.host + " port=" + std::to_string(opt.port) +
         " user=postgres dbname=postgres connect_timeout=5 application_name=velostream-faults";
}

// Connection lost, server restarting or shutting down, or a transient
// conflict: worth reconnecting and trying again.
bool retryable(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) || dynamic_cast<const pqxx::in_doubt_error*>(&e)) return true;
  if (auto s = dynamic_cast<const pqxx::sql_error*>(&e)) {
    std::string st = s->sqlstate();
    return st.empty() || st.compare(0, 2, "57") == 0 || st.compare(0, 2, "08") == 0 || st.compare(0, 2, "40") == 0 ||
           st == "55P03" || st == "53300";
  }
  std::string w = e.what();
  return w.find("connection") != std::string::npos || w.find("terminat") != std::string::npos;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::unique_ptr<pqxx::connection> connect_wait(double timeout_s) {
  auto deadline = Clock::now() + std::chrono::milliseconds((long)(timeout_s * 1000));
  for (;;) {
    try {
      auto c = std::make_unique<pqxx::connection>(conninfo());
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
      c->inhibit_reactivation(true);  // a lost connection is an error, never silently replaced
#pragma GCC diagnostic pop
      return c;
    } catch (const std::exception& e) {
      if (Clock::now() > deadline) throw;
      sleep_ms(200);
    }
  }
}

// The main thread's connection. retry() is for reads and idempotent writes:
// on a lost connection it reconnects and runs the whole transaction again.
// once() is for the rest: the transaction also records a tag, which settles
// whether a transaction whose COMMIT got no answer committed.
struct Db {
  std::unique_ptr<pqxx::connection> c;
  pqxx::connection& get() {
    if (!c || !c->is_open()) c = connect_wait(180);
    return *c;
  }
  void reset() { c.reset(); }

  template <class F>
  auto retry(F f, double timeout_s = 180) -> decltype(f(std::declval<pqxx::work&>())) {
    auto deadline = Clock::now() + std::chrono::milliseconds((long)(timeout_s * 1000));
    for (;;) {
      try {
        pqxx::work tx(get());
        auto r = f(tx);
        tx.commit();
        return r;
      } catch (const std::exception& e) {
        if (!retryable(e) || Clock::now() > deadline) throw;
        reset();
        sleep_ms(200);
      }
    }
  }
  pqxx::result exec(const std::string& sql, double timeout_s = 180) {
    return retry([&](pqxx::work& tx) { return tx.exec(sql); }, timeout_s);
  }
  std::string scalar(const std::string& sql) {
    pqxx::result r = exec(sql);
    return r.empty() || r[0][0].is_null() ? "" : r[0][0].c_str();
  }
  long long num(const std::string& sql) {
    std::string s = scalar(sql);
    return s.empty() ? 0 : atoll(s.c_str());
  }
  void once(const std::string& tag, const std::function<void(pqxx::work&)>& f) {
    auto deadline = Clock::now() + std::chrono::seconds(180);
    for (;;) {
      bool sent = false;
      try {
        pqxx::work tx(get());
        f(tx);
        tx.exec("INSERT INTO faults.commits VALUES (" + tx.quote(tag) + ")");
        sent = true;
        tx.commit();
        return;
      } catch (const std::exception& e) {
        if (!retryable(e) || Clock::now() > deadline) throw;
        reset();
        if (sent && num("SELECT count(*) FROM faults.commits WHERE tag = '" + tag + "'") > 0) {
          say("  (%s: COMMIT got no answer; it did commit)", tag.c_str());
          return;
        }
        sleep_ms(200);
      }
    }
  }
};

// ---------------------------------------------------------------- data

std::vector<std::string> lines;  // CSV lines of the flights, header dropped

std::string tabs(const std::string& csv) {
  std::string t = csv;
  std::replace(t.begin(), t.end(), ',', '\t');  // the flights have no quoted fields
  return t;
}

// Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard
// Hinnant's days_from_civil / civil_from_days).
long long days_from_civil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (long long)doe - 719468;
}
void civil_from_days(long long z, long long* y, unsigned* m, unsigned* d) {
  z += 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (long long)yoe + era * 400 + (*m <= 2);
}

// `line` (a flight: CSV, its first field the departure time as
// YYYY-MM-DD?hh:mm:ss followed by an optional zone, e.g.
// 2001-01-01T00:01:00Z or 2001-01-01 00:01:00) with that time `days` days
// later, in the same format (separator and zone kept). Throws on a line
// without such a time.
std::string shift_days(const std::string& line, long long days) {
  if (days == 0) return line;
  auto digits = [&](size_t at, size_t n) {
    long long v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (i >= line.size() || !isdigit((unsigned char)line[i]))
        throw std::runtime_error("no YYYY-MM-DD hh:mm:ss time at the start of the flight line: " + line);
      v = v * 10 + (line[i] - '0');
    }
    return v;
  };
  if (line.size() < 19 || line[4] != '-' || line[7] != '-' || line[13] != ':' || line[16] != ':' ||
      (line[10] != 'T' && line[10] != ' '))
    throw std::runtime_error("no YYYY-MM-DD hh:mm:ss time at the start of the flight line: " + line);
  long long y = digits(0, 4);
  unsigned mo = (unsigned)digits(5, 2), d = (unsigned)digits(8, 2);
  int h = (int)digits(11, 2), mi = (int)digits(14, 2), se = (int)digits(17, 2);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
    throw std::runtime_error("bad time at the start of the flight line: " + line);
  civil_from_days(days_from_civil(y, mo, d) + days, &y, &mo, &d);
  char buf[96];  // (room for any int, so the compiler sees no truncation)
  snprintf(buf, sizeof(buf), "%04lld-%02u-%02u%c%02d:%02d:%02d", y, mo, d, line[10], h, mi, se);
  return buf + line.substr(19);
}

// The index-th flight the loader or the producer sends: the lines are reused
// cyclically, and on the w-th pass over them (w = index / lines.size()) the
// departure time is w * 32 days later, so that event time keeps increasing
// (January's flights span 31 days; the file is in time order, so each
// stream's rows stay in time order). The oracle tables get the same text.
const long long kShiftDaysPerPass = 32;
std::string flight(size_t index) {
  return shift_days(lines[index % lines.size()], (long long)(index / lines.size()) * kShiftDaysPerPass);
}

// A thread that can be paused between two of its transactions.
struct Pausable {
  std::mutex mu;
  std::condition_variable cv;
  bool pause_req = false, paused = false, stop = false;
  // Called by the thread between units of work; returns false to stop.
  bool checkpoint() {
    std::unique_lock<std::mutex> l(mu);
    if (pause_req && !stop) {
      paused = true;
      cv.notify_all();
      cv.wait(l, [&] { return !pause_req || stop; });
      paused = false;
    }
    return !stop;
  }
  void pause() {
    std::unique_lock<std::mutex> l(mu);
    pause_req = true;
    cv.wait(l, [&] { return paused || stop; });
  }
  void resume() {
    std::lock_guard<std::mutex> l(mu);
    pause_req = false;
    cv.notify_all();
  }
  void finish() {
    std::lock_guard<std::mutex> l(mu);
    stop = true;
    cv.notify_all();
  }
};

// ---------------------------------------------------------------- COPY loader

struct Loader : Pausable {
  std::thread th;
  std::atomic<int> next_chunk{0};  // chunks 0..next_chunk-1 committed, no other
  std::atomic<long long> rows{0};
  std::atomic<int> retried{0}, in_doubt{0}, in_doubt_committed{0};
  std::atomic<int> slow_commit{-1};  // the chunk whose slow COMMIT is under way, else -1
  size_t pos = 0;  // the next flight to send (flight(pos): counts every pass over the lines)
  std::mt19937 rng;
  std::unique_ptr<pqxx::connection> c;

  bool chunk_committed(int chunk) {
    for (;;) {
      try {
        if (!c || !c->is_open()) c = connect_wait(600);
        pqxx::work tx(*c);
        bool yes = tx.exec("SELECT 1 FROM faults.chunks WHERE chunk = " + std::to_string(chunk)).size() > 0;
        tx.commit();
        return yes;
      } catch (const std::exception& e) {
        c.reset();
        sleep_ms(200);
      }
    }
  }

  void run() {
    std::uniform_int_distribution<int> size_d(200, 1500), pause_d(100, 250), slow_d(0, 3);
    while (checkpoint()) {
      int chunk = next_chunk.load();
      int n = size_d(rng);
      std::string stream_data, plain_data;
      for (int i = 0; i < n; ++i) {
        const std::string t = tabs(flight(pos + i));
        stream_data += t;
        plain_data += t + "\t" + std::to_string(chunk);
        if (i + 1 < n) {
          stream_data += '\n';
          plain_data += '\n';
        }
      }
      bool sent = false, committed = false;
      try {
        if (!c || !c->is_open()) c = connect_wait(600);
        pqxx::work tx(*c);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        {
          std::vector<std::string> cols = {"ts", "delay", "distance", "origin", "destination"};
          pqxx::tablewriter w(tx, "flights", cols.begin(), cols.end());
          w.write_raw_line(stream_data);
          w.complete();
        }
        {
          std::vector<std::string> cols = {"ts", "delay", "distance", "origin", "destination", "chunk"};
          pqxx::tablewriter w(tx, "faults.copy_plain", cols.begin(), cols.end());
          w.write_raw_line(plain_data);
          w.complete();
        }
#pragma GCC diagnostic pop
        tx.exec("INSERT INTO faults.chunks VALUES (" + std::to_string(chunk) + ", " + std::to_string(n) + ")");
        // One transaction in four commits slowly (a deferred trigger sleeps
        // 300 ms inside COMMIT), so that an immediate shutdown can land in it.
        bool slow = slow_d(rng) == 0;
        if (slow) tx.exec("SET LOCAL faults.slow_commit = on");
        sent = true;
        if (slow) slow_commit = chunk;
        tx.commit();
        slow_commit = -1;
        committed = true;
      } catch (const std::exception& e) {
        slow_commit = -1;
        if (!retryable(e)) say("  loader: chunk %d: %s", chunk, one_line(e.what()).c_str());
        c.reset();
        if (sent) {
          ++in_doubt;
          committed = chunk_committed(chunk);
          if (committed) ++in_doubt_committed;
          say("  loader: chunk %d: COMMIT got no answer; it %s", chunk, committed ? "committed" : "did not commit");
        }
        if (!committed) {
          ++retried;
          sleep_ms(100);
        }
      }
      if (committed) {
        pos += n;
        rows += n;
        next_chunk = chunk + 1;
        sleep_ms(pause_d(rng));
      }
    }
  }
};

// ---------------------------------------------------------------- Kafka

std::atomic<long long> k_delivered{0}, k_failed{0};
void quiet_log(const rd_kafka_t*, int, const char*, const char*) {}  // broker outages are on purpose
void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err) ++k_failed;
  else ++k_delivered;
}

struct Producer : Pausable {
  std::thread th;
  rd_kafka_t* rk = nullptr;
  rd_kafka_topic_t* rkt = nullptr;
  std::atomic<long long> produced{0};
  size_t pos = 0;  // the next flight to produce (flight(pos))

  void open() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    const char* kv[][2] = {{"bootstrap.servers", opt.brokers.c_str()},
                           {"linger.ms", "5"},
                           {"queue.buffering.max.messages", "2000000"},
                           {"message.timeout.ms", "600000"}};
    for (auto& p : kv)
      if (rd_kafka_conf_set(conf, p[0], p[1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "producer: %s\n", err);
        exit(2);
      }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
      fprintf(stderr, "producer: %s\n", err);
      exit(2);
    }
    rkt = rd_kafka_topic_new(rk, opt.topic.c_str(), nullptr);
  }

  void run() {
    const int per_tick = std::max(1, opt.kafka_rate / 20);  // every 50 ms
    auto next = Clock::now();
    while (checkpoint()) {
      for (int i = 0; i < per_tick; ++i) {
        const std::string l = flight(pos);
        int32_t part = (int32_t)(produced.load() % opt.topic_partitions);
        while (rd_kafka_produce(rkt, part, RD_KAFKA_MSG_F_COPY, (void*)l.data(), l.size(), nullptr, 0, nullptr) ==
               -1)
          rd_kafka_poll(rk, 50);  // queue full
        ++pos;
        ++produced;
      }
      rd_kafka_poll(rk, 0);
      next += std::chrono::milliseconds(50);
      auto now = Clock::now();
      if (next > now) std::this_thread::sleep_until(next);
      else next = now;
    }
  }
  // Waits until every produced message is delivered (or failed).
  bool flush(int timeout_ms) { return rd_kafka_flush(rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR; }
};

// Reads the topic back (the Kafka oracle): every message after the last one
// read, up to the high watermarks it finds first.
struct Readback {
  rd_kafka_t* rk = nullptr;
  std::vector<int64_t> next, high;
  long long total = 0;

  void open() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    const char* kv[][2] = {{"bootstrap.servers", opt.brokers.c_str()},
                           {"group.id", "velostream-faults-oracle"},
                           {"enable.auto.commit", "false"},
                           {"enable.auto.offset.store", "false"},
                           {"enable.partition.eof", "false"}};
    for (auto& p : kv)
      if (rd_kafka_conf_set(conf, p[0], p[1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "readback: %s\n", err);
        exit(2);
      }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
      fprintf(stderr, "readback: %s\n", err);
      exit(2);
    }
    rd_kafka_poll_set_consumer(rk);
    next.assign(opt.topic_partitions, 0);
    high.assign(opt.topic_partitions, 0);
  }

  // Appends the new messages, tab-separated, to `out`; false with `why` if
  // the topic cannot be read completely.
  bool read_new(std::string* out, long long* count, std::string* why) {
    *count = 0;
    for (int p = 0; p < opt.topic_partitions; ++p) {
      int64_t lo = 0, hi = 0;
      rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
      for (int attempt = 0; attempt < 30; ++attempt) {
        err = rd_kafka_query_watermark_offsets(rk, opt.topic.c_str(), p, &lo, &hi, 5000);
        if (!err) break;
        sleep_ms(500);
      }
      if (err) {
        *why = "watermarks of partition " + std::to_string(p) + ": " + rd_kafka_err2str(err);
        return false;
      }
      if (lo > next[p]) {
        *why = "the mock broker dropped messages of partition " + std::to_string(p) + " (low watermark " +
               std::to_string(lo) + " > " + std::to_string(next[p]) + "): use more topic partitions";
        return false;
      }
      high[p] = hi;
    }
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(opt.topic_partitions);
    int pending = 0;
    for (int p = 0; p < opt.topic_partitions; ++p)
      if (next[p] < high[p]) {
        rd_kafka_topic_partition_list_add(list, opt.topic.c_str(), p)->offset = next[p];
        ++pending;
      }
    if (pending == 0) {
      rd_kafka_topic_partition_list_destroy(list);
      return true;
    }
    rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    auto deadline = Clock::now() + std::chrono::seconds(120);
    bool ok = true;
    while (true) {
      bool done = true;
      for (int p = 0; p < opt.topic_partitions; ++p) done = done && next[p] >= high[p];
      if (done) break;
      if (Clock::now() > deadline) {
        *why = "reading the topic back timed out";
        ok = false;
        break;
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 500);
      if (!m) continue;
      if (!m->err && m->partition >= 0 && m->partition < opt.topic_partitions && m->offset >= next[m->partition]) {
        if (m->offset > next[m->partition]) {
          *why = "gap in partition " + std::to_string(m->partition);
          ok = false;
        }
        std::string l((const char*)m->payload, m->len);
        if (m->offset < high[m->partition]) {
          if (!out->empty()) *out += '\n';
          *out += tabs(l);
          ++*count;
        }
        next[m->partition] = m->offset + 1;
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, nullptr);
    // Messages past the high watermark read above are read again next time.
    for (int p = 0; p < opt.topic_partitions; ++p) next[p] = std::min(next[p], high[p]);
    total += *count;
    return ok;
  }
};

// ---------------------------------------------------------------- views

struct View {
  std::string name;
  char stream;        // 'c': the COPY stream, 'k': the Kafka stream
  std::string body;   // SELECT ... with {src} for the FROM item
  std::vector<std::string> keys;
  bool filtered;      // has a WHERE: counts only some events
  std::string alias;  // the FROM item's alias in body (e.g. "f" for FROM {src}, hop(f.ts, ...)), if any
  std::string with;   // more WITH options after velostream.continuous (", velostream.emit = 'final'")
  // Event-time views (emit final, retention): the rows of the batch query the
  // view holds, a condition on its output columns with {stream} for the
  // stream's name (empty: all of them).
  std::string oracle_where;
  // The batch query, with {src} for the committed rows, when it is not body
  // itself (session(): numbered with lag() and a running sum); empty: body.
  std::string oracle_body;
  bool event_time = false;  // emit final or retention: checked once the watermarks converged
  bool retention = false;   // retention: partition 0 deletes after the others closed their windows
  int from_chunk = 0; // COPY views: counts chunks >= from_chunk (re-created views)
  int generation = 0;
  long long lost = 0, doubled = 0;  // at the last check (since its CREATE)
  long long late = 0;               // late events at the last check (since its CREATE)
  long long late_total = 0;         // late events over the run (every generation)
  bool ever_wrong = false;
  int first_wrong_cycle = 0;
};
std::vector<View> views;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}
std::string replace_src(const std::string& body, const std::string& src) {
  std::string s = body;
  size_t at = s.find("{src}");
  s.replace(at, 5, src);
  return s;
}
std::string stream_name(char stream) { return stream == 'c' ? "flights" : "flights_k"; }
std::string view_sql(const View& v) {
  return "CREATE MATERIALIZED VIEW " + v.name + " WITH (velostream.continuous" + v.with + ") AS " +
         replace_src(v.body, stream_name(v.stream) + (v.alias.empty() ? "" : " " + v.alias));
}
std::string oracle_sql(const View& v) {
  std::string q;
  const std::string& body = v.oracle_body.empty() ? v.body : v.oracle_body;
  if (v.stream == 'k')
    q = replace_src(body, "faults.k_plain" + (v.alias.empty() ? "" : " AS " + v.alias));
  else
    q = replace_src(body, "(SELECT * FROM faults.copy_plain WHERE chunk >= " + std::to_string(v.from_chunk) +
                              ") AS " + (v.alias.empty() ? "committed" : v.alias));
  if (v.oracle_where.empty()) return q;
  // The watermark in a scalar subquery: computed once, not per row.
  return "SELECT * FROM (" + q + ") batch WHERE " + replace_all(v.oracle_where, "{stream}", stream_name(v.stream));
}

void define_views() {
  auto add = [](const char* name, char stream, const std::string& body, std::vector<std::string> keys, bool filtered) {
    View v;
    v.name = name;
    v.stream = stream;
    v.body = body;
    v.keys = keys;
    v.filtered = filtered;
    views.push_back(v);
  };
  // COPY stream. The first view's first GROUP BY column (origin) becomes the
  // routing column: by_origin, hourly and long_delays are owned views,
  // by_dest and totals have groups shared by every partition.
  add("c_by_origin", 'c',
      "SELECT origin, count(*) AS n, sum(delay) AS total_delay, min(delay) AS min_delay, max(delay) AS max_delay "
      "FROM {src} GROUP BY origin",
      {"origin"}, false);
  add("c_by_dest", 'c',
      "SELECT destination, count(*) AS n, sum(distance) AS miles, avg(delay) AS avg_delay FROM {src} GROUP BY destination",
      {"destination"}, false);
  add("c_hourly", 'c',
      "SELECT origin, tumble(ts, interval '1 hour') AS hour, count(*) AS n, avg(delay) AS avg_delay, "
      "max(distance) AS longest FROM {src} GROUP BY origin, tumble(ts, interval '1 hour')",
      {"origin", "hour"}, false);
  add("c_long_delays", 'c',
      "SELECT origin, destination, count(*) AS n, sum(distance) AS miles FROM {src} WHERE delay > 15 "
      "GROUP BY origin, destination",
      {"origin", "destination"}, true);
  add("c_totals", 'c', "SELECT count(*) AS n, sum(delay) AS total_delay, max(ts) AS last_departure FROM {src}", {},
      false);
  // Event-time views (the streams have event_time 'ts', watermark_delay '30
  // minutes'), owned (they group by origin, the routing column): hop()
  // windows with emit final, whose rows are those of the windows the
  // watermark closed; hourly tumble windows with retention '2 days', whose
  // rows are those of the windows that ended less than 2 days behind it.
  const char* hop_final =
      "SELECT f.origin, w.window_start, w.window_end, count(*) AS n, sum(f.delay) AS total_delay "
      "FROM {src}, hop(f.ts, interval '15 minutes', interval '1 hour') AS w "
      "GROUP BY f.origin, w.window_start, w.window_end";
  auto emit_final = [&](const char* name, char stream) {
    add(name, stream, hop_final, {"origin", "window_start", "window_end"}, false);
    View& v = views.back();
    v.alias = "f";
    v.with = ", velostream.emit = 'final'";
    v.oracle_where = "window_end <= (SELECT velostream.watermark('{stream}'))";
    v.event_time = true;
  };
  emit_final("c_hop_final", 'c');
  add("c_hourly_retained", 'c',
      "SELECT origin, tumble(ts, interval '1 hour') AS hour, count(*) AS n FROM {src} "
      "GROUP BY origin, tumble(ts, interval '1 hour')",
      {"origin", "hour"}, false);
  views.back().with = ", velostream.retention = '2 days'";
  views.back().oracle_where =
      "hour + interval '1 hour' > (SELECT velostream.watermark('{stream}')) - interval '2 days'";
  views.back().event_time = views.back().retention = true;
  // Kafka stream: routed by origin too (its workers route what they consume),
  // so the views grouping by origin own their groups; totals merges partial
  // states in SQL.
  add("k_by_origin", 'k',
      "SELECT origin, count(*) AS n, sum(delay) AS total_delay, max(distance) AS longest FROM {src} GROUP BY origin",
      {"origin"}, false);
  add("k_by_route_day", 'k',
      "SELECT origin, destination, tumble(ts, interval '1 day') AS day, count(*) AS n, sum(delay) AS total_delay "
      "FROM {src} GROUP BY origin, destination, tumble(ts, interval '1 day')",
      {"origin", "destination", "day"}, false);
  add("k_long", 'k',
      "SELECT origin, count(*) AS n, avg(delay) AS avg_delay FROM {src} WHERE delay > 15 GROUP BY origin",
      {"origin"}, true);
  add("k_totals", 'k', "SELECT count(*) AS n, sum(distance) AS miles FROM {src}", {}, false);
  emit_final("k_hop_final", 'k');
  // Session windows on the COPY stream (owned: grouped by origin), with emit
  // changes (every session's row as it grows) and emit final (a session's
  // row once the watermark passed its last event plus the gap: it ends gap
  // after its last event, and closes when that end is behind the watermark).
  // The batch query numbers the sessions with lag() and a running sum; a
  // re-created view's batch query reads the chunks committed after its
  // CREATE, as for the other COPY views.
  // add_session(name, stream, key, final): a session view grouped by `key`
  // (a column), its batch query numbering the sessions of each key.
  auto add_session = [&](const char* name, char stream, const std::string& key, bool final) {
    add(name, stream,
        "SELECT " + key + ", session(ts, interval '30 minutes') AS session_start, count(*) AS n, max(ts) AS last_ts, "
        "sum(delay) AS total_delay FROM {src} GROUP BY " + key + ", session(ts, interval '30 minutes')",
        {key, "session_start"}, false);
    View& v = views.back();
    v.oracle_body =
        "SELECT " + key + ", min(ts) AS session_start, count(*) AS n, max(ts) AS last_ts, sum(delay) AS total_delay "
        "FROM (SELECT *, sum(CASE WHEN ts - prev > interval '30 minutes' THEN 1 ELSE 0 END) "
        "OVER (PARTITION BY " + key + " ORDER BY ts) AS session_no "
        "FROM (SELECT *, lag(ts) OVER (PARTITION BY " + key + " ORDER BY ts) AS prev FROM {src}) x) y "
        "GROUP BY " + key + ", session_no";
    if (!final) return;
    v.with = ", velostream.emit = 'final'";
    v.oracle_where = "last_ts + interval '30 minutes' < (SELECT velostream.watermark('{stream}'))";
    v.event_time = true;
  };
  add_session("c_session", 'c', "origin", false);
  add_session("c_session_final", 'c', "origin", true);
  // Exchanged groups: session windows by destination, while both streams
  // route by origin, so each worker sends the sessions another partition
  // owns to that partition's log in the transaction that consumed their
  // rows: emit final on the COPY stream, emit changes on the Kafka stream.
  add_session("c_dest_session_final", 'c', "destination", true);
  add_session("k_dest_session", 'k', "destination", false);
}

struct Check {
  bool exact = true;
  long long extra = 0, missing = 0, lost = 0, doubled = 0;  // rows only in the view / only in the batch query
  std::vector<std::string> samples;
  std::string error;
  bool operator==(const Check& o) const {
    return exact == o.exact && extra == o.extra && missing == o.missing && lost == o.lost && doubled == o.doubled &&
           error == o.error;
  }
};

// quick: only whether the view is exact (no damage count, no samples).
Check check_view(Db& db, const View& v, bool quick = false) {
  Check c;
  std::string o = oracle_sql(v);
  std::string on;  // the flights have no NULL keys
  for (const auto& k : v.keys) on += (on.empty() ? "" : " AND ") + ("v." + k + " = o." + k);
  if (on.empty()) on = "true";
  try {
    pqxx::result r = db.exec("WITH o AS (" + o + ") SELECT (SELECT count(*) FROM (SELECT * FROM " + v.name +
                             " EXCEPT ALL SELECT * FROM o) d), (SELECT count(*) FROM (SELECT * FROM o EXCEPT ALL "
                             "SELECT * FROM " + v.name + ") d)");
    c.extra = r[0][0].as<long long>();
    c.missing = r[0][1].as<long long>();
    c.exact = c.extra == 0 && c.missing == 0;
    if (c.exact || quick) return c;
    r = db.exec("WITH o AS (" + o + ") SELECT coalesce(sum(greatest(coalesce(o.n, 0) - coalesce(v.n, 0), 0)), 0), "
                "coalesce(sum(greatest(coalesce(v.n, 0) - coalesce(o.n, 0), 0)), 0) FROM o FULL JOIN " + v.name +
                " v ON " + on);
    c.lost = r[0][0].as<long long>();
    c.doubled = r[0][1].as<long long>();
    std::string order;
    for (const auto& k : v.keys) order += (order.empty() ? " ORDER BY " : ", ") + ("coalesce(v." + k + ", o." + k + ")");
    r = db.exec("WITH o AS (" + o + ") SELECT coalesce(row_to_json(v)::text, '(none)'), "
                "coalesce(row_to_json(o)::text, '(none)') FROM o FULL JOIN " + v.name + " v ON " + on +
                " WHERE to_jsonb(v) IS DISTINCT FROM to_jsonb(o)" + order + " LIMIT 4");
    for (const auto& row : r)
      c.samples.push_back(std::string("view ") + row[0].c_str() + "  batch " + row[1].c_str());
  } catch (const std::exception& e) {
    c.exact = false;
    c.error = one_line(e.what());
  }
  return c;
}

// ---------------------------------------------------------------- the run

Db db;
Loader loader;
Producer producer;
Readback readback;
std::mt19937 rng;
FILE* mock = nullptr;
int expected_workers() { return opt.copy_partitions + opt.kafka_workers; }

int rand_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

void setup() {
  char sql[4096];
  db.exec("CREATE EXTENSION velostream");
  snprintf(sql, sizeof(sql),
           "CREATE SCHEMA faults;"
           "CREATE TABLE faults.copy_plain (ts timestamptz, delay int, distance int, origin text, destination text, "
           "chunk int NOT NULL);"
           "CREATE TABLE faults.chunks (chunk int PRIMARY KEY, rows int NOT NULL);"
           "CREATE TABLE faults.k_plain (ts timestamptz, delay int, distance int, origin text, destination text);"
           "CREATE TABLE faults.commits (tag text PRIMARY KEY);"
           "CREATE FUNCTION faults.slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
           "IF current_setting('faults.slow_commit', true) = 'on' THEN PERFORM pg_sleep(0.3); END IF; "
           "RETURN NULL; END $$;"
           "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON faults.chunks DEFERRABLE INITIALLY DEFERRED "
           "FOR EACH ROW EXECUTE FUNCTION faults.slow_commit();"
           "CREATE FUNCTION faults.raise() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
           "RAISE EXCEPTION 'fault injection: a trigger on %% refuses the write', TG_TABLE_NAME; END $$;"
           "CREATE FOREIGN TABLE flights (ts timestamptz, delay int, distance int, origin text, destination text) "
           "SERVER velostream OPTIONS (partitions '%d', event_time 'ts', watermark_delay '30 minutes');"
           "CREATE SERVER kafka FOREIGN DATA WRAPPER velostream OPTIONS (brokers '%s', \"socket.keepalive.enable\" "
           "'false');"
           "CREATE FOREIGN TABLE flights_k (ts timestamptz, delay int, distance int, origin text, destination text) "
           "SERVER kafka OPTIONS (topic '%s', format 'csv', start_offset 'earliest', partitions '%d', "
           "event_time 'ts', watermark_delay '30 minutes');",
           opt.copy_partitions, opt.brokers.c_str(), opt.topic.c_str(), opt.kafka_workers);
  db.exec(sql);
  for (const auto& v : views) db.exec(view_sql(v));
}

// pids of the backends of a type ('velostream worker', 'velostream launcher').
std::vector<int> backends(const std::string& type) {
  std::vector<int> pids;
  for (const auto& r : db.exec("SELECT pid FROM pg_stat_activity WHERE backend_type = '" + type + "' ORDER BY pid"))
    pids.push_back(r[0].as<int>());
  return pids;
}
std::vector<int> wait_backends(const std::string& type, int timeout_s) {
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    std::vector<int> p = backends(type);
    if (!p.empty() || Clock::now() > deadline) return p;
    sleep_ms(200);
  }
}
std::string process_title(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (char& ch : s)
    if (ch == '\0') ch = ' ';
  return one_line(s);
}

int run_cmd(const std::string& cmd) {
  int rc = system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}
std::string pg_ctl(const std::string& args) {
  return "runuser -u postgres -- " + opt.pgbin + "/pg_ctl -D " + opt.pgdata + " " + args + " >/dev/null 2>&1";
}
void mock_cmd(const char* what) {
  fprintf(mock, "%s\n", what);
  fflush(mock);
}

struct FaultStats {
  int injected = 0, damaged_cycles = 0, liveness_failures = 0, stalls = 0;
  long long lost = 0, doubled = 0;
};
FaultStats fstats[kFaultTypes];
int alter_count = 0, recreate_count = 0;

// Sum of the count column of a no-WHERE view, and what it must reach.
long long view_count(const View& v) { return db.num("SELECT coalesce(sum(n), 0) FROM " + v.name); }

// One fault. Returns a description; `liveness_ok` is false when a raising
// trigger on one view stopped a sibling view.
std::string inject(Fault f, int cycle, bool* liveness_ok) {
  *liveness_ok = true;
  switch (f) {
    case KillWorker: {
      std::vector<int> pids = wait_backends("velostream worker", 30);
      if (pids.empty()) throw std::runtime_error("no worker running after 30 s");
      int pid = pids[rand_int(0, (int)pids.size() - 1)];
      std::string title = process_title(pid);
      kill(pid, SIGKILL);
      return "kill -9 " + std::to_string(pid) + " (" + title + ")";
    }
    case KillLauncher: {
      std::vector<int> pids = wait_backends("velostream launcher", 30);
      if (pids.empty()) throw std::runtime_error("no launcher running after 30 s");
      kill(pids[0], SIGKILL);
      return "kill -9 launcher " + std::to_string(pids[0]);
    }
    case TerminateLauncher: {
      std::vector<int> pids = wait_backends("velostream launcher", 30);
      if (pids.empty()) throw std::runtime_error("no launcher running after 30 s");
      db.exec("SELECT pg_terminate_backend(" + std::to_string(pids[0]) + ")");
      return "pg_terminate_backend(launcher " + std::to_string(pids[0]) + ")";
    }
    case ImmediateRestart: {
      int down = rand_int(0, 1000);
      // Half of them wait (up to 5 s) for a slow COMMIT of the loader and
      // land inside it: the loader must then find out whether it committed.
      std::string during;
      if (rand_int(0, 1) == 0) {
        auto until = Clock::now() + std::chrono::seconds(5);
        while (loader.slow_commit.load() < 0 && Clock::now() < until) sleep_ms(5);
        int chunk = loader.slow_commit.load();
        if (chunk >= 0) {
          sleep_ms(100);
          during = " during the COMMIT of chunk " + std::to_string(chunk);
        }
      }
      int rc = run_cmd(pg_ctl("-m immediate -w stop"));
      db.reset();
      sleep_ms(down);
      int rc2 = 1;
      for (int i = 0; i < 10 && rc2 != 0; ++i) {
        rc2 = run_cmd(pg_ctl("-l " + opt.pglog + " -w -t 120 start"));
        if (rc2 != 0) sleep_ms(1000);
      }
      if (rc2 != 0) {
        verdict(false, "cycle %d: pg_ctl start failed after an immediate shutdown", cycle);
        fflush(stdout);
        _exit(1);
      }
      return "pg_ctl stop -m immediate" + during + " (rc " + std::to_string(rc) + "), down " + std::to_string(down) +
             " ms, start";
    }
    case BrokerOutage: {
      int ms = rand_int(1000, 4000);
      mock_cmd("down");
      sleep_ms(ms);
      mock_cmd("up");
      return "brokers down for " + std::to_string(ms) + " ms";
    }
    case RecreateView: {
      std::vector<int> cands;
      for (size_t i = 0; i < views.size(); ++i)
        if (views[i].stream == 'c' && !views[i].keys.empty()) cands.push_back((int)i);
      View& v = views[cands[rand_int(0, (int)cands.size() - 1)]];
      loader.pause();  // between two of the loader's transactions
      int from = loader.next_chunk.load();
      std::string tag = "recreate " + std::to_string(++recreate_count);
      db.once(tag, [&](pqxx::work& tx) {
        tx.exec("DROP MATERIALIZED VIEW " + v.name);
        tx.exec(view_sql(v));
      });
      v.from_chunk = from;
      ++v.generation;
      v.lost = v.doubled = v.late = 0;
      loader.resume();
      return "DROP + CREATE of " + v.name + " (counts chunks from " + std::to_string(from) + ")";
    }
    case AlterServer: {
      ++alter_count;
      std::string val = alter_count % 2 ? "true" : "false";
      db.exec("ALTER SERVER kafka OPTIONS (SET \"socket.keepalive.enable\" '" + val + "')");
      return "ALTER SERVER kafka OPTIONS (SET \"socket.keepalive.enable\" '" + val + "')";
    }
    case RaisingTrigger: {
      // The COPY stream's views and the Kafka stream's in turn.
      static int triggers = 0;
      char stream = triggers++ % 2 == 0 ? 'c' : 'k';
      std::vector<int> cands;
      for (size_t i = 0; i < views.size(); ++i)
        if (views[i].stream == stream) cands.push_back((int)i);
      View& v = views[cands[rand_int(0, (int)cands.size() - 1)]];
      const View* sib = nullptr;
      for (const auto& s : views)
        if (s.stream == v.stream && s.name != v.name && !s.filtered && !sib) sib = &s;
      auto added = Clock::now();
      db.exec("CREATE OR REPLACE TRIGGER faults_raise BEFORE INSERT OR UPDATE ON " + v.name +
              " FOR EACH ROW EXECUTE FUNCTION faults.raise()");
      int hold = rand_int(2000, 5000);
      sleep_ms(1000);
      // Events committed by now must reach the sibling while the trigger
      // stays (plus what it had counted too much, or minus too little, at the
      // last check, so that earlier damage does not fool the check).
      long long target = sib->doubled - sib->lost;
      if (v.stream == 'c') {
        target += db.num("SELECT coalesce(sum(rows), 0) FROM faults.chunks WHERE chunk >= " +
                        std::to_string(sib->from_chunk) + " AND chunk < " + std::to_string(loader.next_chunk.load()));
      } else {
        target += k_delivered.load();
      }
      auto deadline = Clock::now() + std::chrono::seconds(opt.liveness_timeout);
      long long got = 0;
      while ((got = view_count(*sib)) < target && Clock::now() < deadline) sleep_ms(250);
      std::string live;
      if (got < target) {
        *liveness_ok = false;
        live = "; sibling " + sib->name + " stalled: " + std::to_string(got) + " of " + std::to_string(target) +
               " events after " + std::to_string(opt.liveness_timeout) + " s";
      } else {
        live = "; sibling " + sib->name + " kept going (" + std::to_string(got) + " >= " + std::to_string(target) + ")";
      }
      std::this_thread::sleep_until(added + std::chrono::milliseconds(hold));
      long long held = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - added).count();
      db.exec("DROP TRIGGER IF EXISTS faults_raise ON " + v.name);
      return "raising trigger on " + v.name + " for " + std::to_string(held) + " ms" + live;
    }
    default:
      return "?";
  }
}

// The server log's errors since the last call: how many, and the distinct
// messages (numbers stripped), for the cycle report.
std::string log_errors() {
  static std::streamoff read_to = 0;
  std::ifstream f(opt.pglog);
  if (!f) return "";
  f.seekg(0, std::ios::end);
  std::streamoff end = f.tellg();
  if (end < read_to) read_to = 0;
  f.seekg(read_to);
  std::map<std::string, int> seen;
  std::string l;
  int n = 0;
  while (std::getline(f, l)) {
    size_t at = l.find(" ERROR:  ");
    if (at == std::string::npos) at = l.find(" FATAL:  ");
    if (at == std::string::npos || l.find("client backend") != std::string::npos) continue;
    size_t kind = l.find("] ");
    std::string who = kind != std::string::npos && kind < at ? l.substr(kind + 2, at - kind - 2) : "";
    std::string msg = who + ": " + l.substr(at + 1);
    for (char& c : msg)
      if (isdigit((unsigned char)c)) c = '#';
    ++seen[msg];
    ++n;
  }
  read_to = end;
  if (n == 0) return "";
  std::string out = std::to_string(n) + " errors in the server log:";
  for (const auto& m : seen) out += "\n      " + std::to_string(m.second) + " x " + m.first.substr(0, 200);
  return out;
}

// Waits until every view has caught up with what committed; false names the
// views that did not.
bool catch_up(std::string* why) {
  bool ok = true;
  auto deadline = Clock::now() + std::chrono::seconds(opt.catchup_timeout);
  for (const auto& v : views) {
    if (v.stream != 'c') continue;
    long left = std::max(1L, (long)std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now()).count());
    std::string r = db.scalar("SELECT velostream.wait('" + v.name + "', '" + std::to_string(left) + " s')");
    if (r != "t") {
      ok = false;
      *why += " " + v.name;
    }
  }
  // Kafka: the committed offsets reach the high watermarks read back, and
  // (where views can be set aside, velostream 0.2) no view is set aside.
  static const bool set_aside = db.num("SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                                       "'velostream' AND table_name = 'view_partition_stats' AND "
                                       "column_name = 'status'") > 0;
  for (;;) {
    std::vector<int64_t> off(opt.topic_partitions, 0);
    for (const auto& r : db.exec("SELECT kafka_partition, coalesce(next_offset, 0) FROM velostream.kafka_offsets "
                                 "WHERE stream = 'flights_k'::regclass"))
      if (r[0].as<int>() < opt.topic_partitions) off[r[0].as<int>()] = r[1].as<long long>();
    int behind = 0;
    for (int p = 0; p < opt.topic_partitions; ++p) behind += off[p] < readback.high[p];
    std::string failing;
    if (set_aside)
      failing = db.scalar("SELECT string_agg(DISTINCT s.view::text, ', ') FROM velostream.view_partition_stats s "
                          "JOIN velostream.views v USING (view) WHERE v.stream = 'flights_k'::regclass AND "
                          "s.status = 'failing'");
    if (behind == 0 && failing.empty()) break;
    if (Clock::now() > deadline) {
      ok = false;
      if (behind) *why += " flights_k (" + std::to_string(behind) + " topic partitions behind)";
      if (!failing.empty()) *why += " " + failing + " (set aside)";
      break;
    }
    sleep_ms(200);
  }
  return ok;
}

// The event-time views are checked once their stream is quiet and its
// watermarks converged: every partition's watermark (what its views close
// windows at) equals the stream's, velostream.watermark, and every
// event-time view closed its windows through it on every partition; then a
// retention view until it equals its batch query (partition 0 deletes once
// every partition closed). Waits up to `timeout_s`; false with the details
// in `why`. `marks` gets the streams' watermarks.
bool wait_event_time(double timeout_s, std::string* why, std::string* marks) {
  auto deadline = Clock::now() + std::chrono::milliseconds((long)(timeout_s * 1000));
  std::set<char> streams;
  for (const auto& v : views)
    if (v.event_time) streams.insert(v.stream);
  for (;;) {
    std::string lag;
    *marks = "";
    for (char st : streams) {
      std::string n = stream_name(st);
      pqxx::result r = db.exec(
          "WITH w AS (SELECT velostream.watermark('" + n + "') AS wm) SELECT (SELECT wm FROM w), "
          "(SELECT string_agg(partition || '=' || coalesce(watermark::text, 'NULL'), ' ' ORDER BY partition) "
          "   FROM velostream.stream_partitions WHERE stream = '" + n + "'::regclass "
          "    AND watermark IS DISTINCT FROM (SELECT wm FROM w))");
      *marks += std::string(marks->empty() ? "" : ", ") + n + " " + (r[0][0].is_null() ? "NULL" : r[0][0].c_str());
      if (!r[0][1].is_null())
        lag += " " + n + " (watermark " + (r[0][0].is_null() ? "NULL" : r[0][0].c_str()) +
               "; partitions behind it: " + r[0][1].c_str() + ")";
    }
    for (const auto& v : views) {
      if (!v.event_time) continue;
      pqxx::result r = db.exec(
          "SELECT count(*), string_agg(partition || ': ' || coalesce(watermark::text, 'NULL') || ' of ' || "
          "coalesce(partition_watermark::text, 'NULL'), ', ' ORDER BY partition) FILTER (WHERE watermark IS "
          "DISTINCT FROM partition_watermark) FROM velostream.stats WHERE view = '" + v.name + "'::regclass");
      if (r[0][0].as<long long>() == 0) lag += " " + v.name + " (no row in velostream.stats)";
      else if (!r[0][1].is_null()) lag += " " + v.name + " (closed through " + r[0][1].c_str() + ")";
    }
    if (lag.empty())
      for (const auto& v : views)
        if (v.retention && !check_view(db, v, true).exact) lag += " " + v.name + " (retention not applied yet)";
    if (lag.empty()) return true;
    if (Clock::now() > deadline) {
      *why = lag;
      return false;
    }
    sleep_ms(50);
  }
}

// The streams' watermarks now (to tell whether one moved during a check).
std::string stream_watermarks() {
  return db.scalar("SELECT concat_ws(' ', velostream.watermark('flights'), velostream.watermark('flights_k'))");
}

}  // namespace

int driver_main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") opt.host = val();
    else if (a == "--port") opt.port = atoi(val().c_str());
    else if (a == "--pgbin") opt.pgbin = val();
    else if (a == "--pgdata") opt.pgdata = val();
    else if (a == "--pglog") opt.pglog = val();
    else if (a == "--brokers") opt.brokers = val();
    else if (a == "--mock-fifo") opt.mock_fifo = val();
    else if (a == "--topic") opt.topic = val();
    else if (a == "--topic-partitions") opt.topic_partitions = atoi(val().c_str());
    else if (a == "--data") opt.data = val();
    else if (a == "--profile") opt.profile = val();
    else if (a == "--seed") opt.seed = (unsigned)strtoul(val().c_str(), nullptr, 10);
    else if (a == "--cycles") opt.cycles = atoi(val().c_str());
    else if (a == "--faults-per-cycle") opt.faults_per_cycle = atoi(val().c_str());
    else if (a == "--rows") opt.rows = atoi(val().c_str());
    else if (a == "--kafka-rate") opt.kafka_rate = atoi(val().c_str());
    else if (a == "--only") {
      std::stringstream ss(val());
      std::string t;
      while (std::getline(ss, t, ',')) opt.only.insert(t);
    } else {
      fprintf(stderr,
              "usage: %s --pgdata DIR --pglog FILE --brokers B --mock-fifo F --data CSV [--host DIR] [--port N]\n"
              "  [--pgbin DIR] [--topic T] [--topic-partitions N] [--profile short|long] [--seed N] [--cycles N]\n"
              "  [--faults-per-cycle N] [--rows N] [--kafka-rate N] [--only fault,fault...]\n",
              argv[0]);
      return 2;
    }
  }
  bool long_profile = opt.profile == "long";
  if (!long_profile && opt.profile != "short") {
    fprintf(stderr, "unknown profile %s\n", opt.profile.c_str());
    return 2;
  }
  if (!opt.cycles) opt.cycles = long_profile ? 30 : 12;
  if (!opt.faults_per_cycle) opt.faults_per_cycle = long_profile ? 2 : 1;
  if (!opt.rows) opt.rows = long_profile ? 0 : 100000;
  if (!opt.kafka_rate) opt.kafka_rate = 1500;
  opt.min_faults = long_profile ? 50 : 10;
  for (const auto& t : opt.only) {
    bool known = false;
    for (const char* n : kFaultNames) known = known || t == n;
    if (!known) {
      fprintf(stderr, "unknown fault %s\n", t.c_str());
      return 2;
    }
  }
  // pg_ctl runs as postgres: from a directory it can enter (run.sh passes absolute paths).
  if (chdir("/") != 0) perror("chdir /");
  rng.seed(opt.seed);
  loader.rng.seed(opt.seed * 7919u + 1);

  {
    std::ifstream f(opt.data);
    std::string l;
    while (std::getline(f, l) && (opt.rows == 0 || (int)lines.size() < opt.rows))
      if (!l.empty()) lines.push_back(l);
    if (lines.empty()) {
      fprintf(stderr, "no rows in %s\n", opt.data.c_str());
      return 2;
    }
    // Every line must have a departure time to shift (checked here, not in
    // the loader's and producer's threads).
    for (const auto& l : lines) {
      try {
        shift_days(l, kShiftDaysPerPass);
      } catch (const std::exception& e) {
        fprintf(stderr, "%s: %s\n", opt.data.c_str(), e.what());
        return 2;
      }
    }
  }
  mock = fopen(opt.mock_fifo.c_str(), "w");
  if (!mock) {
    perror(opt.mock_fifo.c_str());
    return 2;
  }
  // The fault plan: every allowed type once in a seeded order, then seeded draws.
  std::vector<Fault> allowed;
  for (int t = 0; t < kFaultTypes; ++t)
    if (opt.only.empty() || opt.only.count(kFaultNames[t])) allowed.push_back((Fault)t);
  std::vector<Fault> plan = allowed;
  std::shuffle(plan.begin(), plan.end(), rng);
  int total = opt.cycles * opt.faults_per_cycle;
  while ((int)plan.size() < total) plan.push_back(allowed[rand_int(0, (int)allowed.size() - 1)]);
  plan.resize(total);

  say("velostream-faults: profile %s, seed %u, %d cycles x %d faults, %zu flights per stream (reused cyclically), "
      "Kafka %d msg/s over %d topic partitions",
      opt.profile.c_str(), opt.seed, opt.cycles, opt.faults_per_cycle, lines.size(), opt.kafka_rate,
      opt.topic_partitions);
  std::string planned;
  for (Fault f : plan) planned += std::string(planned.empty() ? "" : " ") + kFaultNames[f];
  say("fault plan: %s", planned.c_str());

  define_views();
  setup();
  say("streams flights (COPY, %d partitions) and flights_k (Kafka, %d workers); views:", opt.copy_partitions,
      opt.kafka_workers);
  for (const auto& v : views) say("  %s", view_sql(v).c_str());
  producer.open();
  readback.open();
  loader.th = std::thread([] { loader.run(); });
  producer.th = std::thread([] { producer.run(); });

  int survived = 0, first_failure = 0, injected = 0;
  long long total_lost = 0, total_doubled = 0;
  std::vector<int> duplicate_worker_cycles;
  bool aborted = false;
  for (int cycle = 1; cycle <= opt.cycles && !aborted; ++cycle) {
    // Data flows; the cycle's faults land at random moments.
    double phase = std::uniform_real_distribution<double>(opt.phase_min, opt.phase_max)(rng);
    std::vector<double> at;
    for (int i = 0; i < opt.faults_per_cycle; ++i)
      at.push_back(std::uniform_real_distribution<double>(0.2, phase)(rng));
    std::sort(at.begin(), at.end());
    loader.resume();
    producer.resume();
    auto start = Clock::now();
    std::vector<Fault> faults;
    bool live = true;
    for (int i = 0; i < opt.faults_per_cycle; ++i) {
      Fault f = plan[(cycle - 1) * opt.faults_per_cycle + i];
      faults.push_back(f);
      std::this_thread::sleep_until(start + std::chrono::milliseconds((long)(at[i] * 1000)));
      bool ok = true;
      std::string what;
      try {
        what = inject(f, cycle, &ok);
      } catch (const std::exception& e) {
        what = std::string("error: ") + one_line(e.what());
        verdict(false, "cycle %d: injecting %s failed: %s", cycle, kFaultNames[f], what.c_str());
      }
      ++injected;
      ++fstats[f].injected;
      if (!ok) {
        live = false;
        ++fstats[f].liveness_failures;
        verdict(false, "faults %s seed %u cycle %d: %s", opt.profile.c_str(), opt.seed, cycle, what.c_str());
      }
      say("cycle %d: fault %d/%d %s: %s", cycle, injected, total, kFaultNames[f], what.c_str());
    }
    std::this_thread::sleep_until(start + std::chrono::milliseconds((long)(phase * 1000)));

    // Stop the data, wait for the views, compare.
    loader.pause();
    producer.pause();
    bool flushed = producer.flush(120000);
    std::string batch, why;
    long long n = 0;
    if (!readback.read_new(&batch, &n, &why)) {
      verdict(false, "cycle %d: reading the topic back: %s", cycle, why.c_str());
      aborted = true;
      break;
    }
    if (n > 0) {
      db.once("kafka batch " + std::to_string(cycle), [&](pqxx::work& tx) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        std::vector<std::string> cols = {"ts", "delay", "distance", "origin", "destination"};
        pqxx::tablewriter w(tx, "faults.k_plain", cols.begin(), cols.end());
        w.write_raw_line(batch);
        w.complete();
#pragma GCC diagnostic pop
      });
    }
    std::string stalled;
    bool caught_up = catch_up(&stalled);
    // The event-time views: until the watermarks converged (the streams are
    // quiet now).
    std::string unconverged, marks;
    auto converge_start = Clock::now();
    bool converged = !caught_up || wait_event_time(opt.converge_timeout, &unconverged, &marks);
    double converge_s = std::chrono::duration<double>(Clock::now() - converge_start).count();
    int workers = (int)backends("velostream worker").size();
    if (workers > expected_workers()) duplicate_worker_cycles.push_back(cycle);
    // Compare; a view still moving gets a few more seconds (stop when stable).
    // Should a watermark move during a check (a partition quiet for
    // idle_timeout stops holding it back), the event-time views wait for the
    // watermarks again, and that check does not count as stable.
    std::vector<Check> checks, prev;
    auto settle = Clock::now() + std::chrono::seconds(15);
    int stable = 0;
    for (;;) {
      std::string before = stream_watermarks();
      checks.clear();
      bool all = true;
      for (const auto& v : views) {
        checks.push_back(check_view(db, v));
        all = all && checks.back().exact;
      }
      if (all) break;
      bool moved = stream_watermarks() != before;
      stable = (checks == prev && !moved) ? stable + 1 : 0;
      if (stable >= 2 || Clock::now() > settle) break;
      prev = checks;
      sleep_ms(1000);
      if (converged) converged = wait_event_time(opt.converge_timeout, &unconverged, &marks);
    }
    // Late events: the flights are in time order in each stream, none is late.
    std::map<std::string, long long> late_now;
    for (const auto& r : db.exec("SELECT view::text, sum(late_events) FROM velostream.stats GROUP BY 1"))
      late_now[r[0].c_str()] = r[1].as<long long>();
    long long chunks = loader.next_chunk.load();
    say("cycle %d checked: %lld chunks (%lld rows) committed, %d COPYs retried, %d COMMITs in doubt (%d committed); "
        "Kafka %lld messages in the topic (%lld produced%s); workers %d (expected %d)",
        cycle, chunks, loader.rows.load(), loader.retried.load(), loader.in_doubt.load(),
        loader.in_doubt_committed.load(), readback.total, producer.produced.load(),
        flushed ? "" : ", NOT all delivered", workers, expected_workers());
    if (!marks.empty()) {
      std::string rows;
      for (const auto& v : views)
        if (v.event_time) rows += ", " + v.name + " " + db.scalar("SELECT count(*) FROM " + v.name) + " rows";
      say("  watermarks: %s (converged after %.2f s)%s", marks.c_str(), converge_s, rows.c_str());
    }
    std::string errs = log_errors();
    if (!errs.empty()) say("  %s", errs.c_str());
    bool cycle_ok = live && caught_up && converged;
    if (!converged)
      verdict(false, "faults %s seed %u cycle %d: the event-time views' watermarks did not converge within %d s:%s",
              opt.profile.c_str(), opt.seed, cycle, opt.converge_timeout, unconverged.c_str());
    for (View& v : views) {
      long long now = late_now.count(v.name) ? late_now[v.name] : 0;
      if (now > v.late) {
        cycle_ok = false;
        v.late_total += now - v.late;
        verdict(false, "faults %s seed %u cycle %d: %s: %lld late events (%lld since the last check), yet the flights "
                "are in time order",
                opt.profile.c_str(), opt.seed, cycle, v.name.c_str(), now, now - v.late);
        try {
          for (const auto& r : db.exec("SELECT partition, payload, reason FROM velostream.errors WHERE reason LIKE "
                                       "'late: continuous view \"" + v.name + "\"%' ORDER BY id DESC LIMIT 3"))
            say("      partition %s: %s: %s", r[0].c_str(), r[1].c_str(), r[2].c_str());
        } catch (const std::exception& e) {
          say("      (reading velostream.errors: %s)", one_line(e.what()).c_str());
        }
      }
      v.late = now;
    }
    if (!caught_up) {
      for (Fault f : faults) ++fstats[f].stalls;
      verdict(false, "faults %s seed %u cycle %d: views did not catch up within %d s:%s", opt.profile.c_str(), opt.seed,
              cycle, opt.catchup_timeout, stalled.c_str());
    }
    std::map<char, long long> lost_by_stream, doubled_by_stream;
    for (size_t i = 0; i < views.size(); ++i) {
      View& v = views[i];
      const Check& c = checks[i];
      long long dl = c.lost - v.lost, dd = c.doubled - v.doubled;
      if (!c.exact) {
        cycle_ok = false;
        if (!v.ever_wrong) {
          v.ever_wrong = true;
          v.first_wrong_cycle = cycle;
        }
        say("  %s: %lld rows only in the view, %lld only in the batch query; events lost %lld (%+lld), doubled %lld "
            "(%+lld)%s%s",
            v.name.c_str(), c.extra, c.missing, c.lost, dl, c.doubled, dd, c.error.empty() ? "" : "; error: ",
            c.error.c_str());
        for (const auto& s : c.samples) say("      %s", s.c_str());
      }
      lost_by_stream[v.stream] = std::max(lost_by_stream[v.stream], std::max(0LL, dl));
      doubled_by_stream[v.stream] = std::max(doubled_by_stream[v.stream], std::max(0LL, dd));
      v.lost = c.lost;
      v.doubled = c.doubled;
    }
    long long cl = lost_by_stream['c'] + lost_by_stream['k'], cd = doubled_by_stream['c'] + doubled_by_stream['k'];
    total_lost += cl;
    total_doubled += cd;
    if (cl || cd)
      for (Fault f : faults) {
        ++fstats[f].damaged_cycles;
        fstats[f].lost += cl;
        fstats[f].doubled += cd;
      }
    std::string names;
    for (Fault f : faults) names += std::string(names.empty() ? "" : ", ") + kFaultNames[f];
    if (cycle_ok) {
      ++survived;
      say("cycle %d [%s]: every view exact", cycle, names.c_str());
    } else {
      if (!first_failure) first_failure = cycle;
      say("cycle %d [%s]: WRONG; new damage in this cycle: %lld events lost, %lld doubled%s", cycle, names.c_str(), cl,
          cd, workers > expected_workers() ? " (more workers than partitions are running)" : "");
    }
    if (!caught_up) {
      say("views stalled: stopping here");
      aborted = true;
    }
  }

  loader.finish();
  producer.finish();
  loader.th.join();
  producer.th.join();

  printf("\n");
  say("per fault type (a cycle's damage is charged to every fault of that cycle):");
  for (int t = 0; t < kFaultTypes; ++t)
    if (fstats[t].injected)
      say("  %-19s injected %2d, cycles gone wrong %2d, events lost %lld, doubled %lld, siblings stalled %d, "
          "catch-up timeouts %d",
          kFaultNames[t], fstats[t].injected, fstats[t].damaged_cycles, fstats[t].lost, fstats[t].doubled,
          fstats[t].liveness_failures, fstats[t].stalls);
  if (!duplicate_worker_cycles.empty()) {
    std::string s;
    for (int c : duplicate_worker_cycles) s += " " + std::to_string(c);
    say("more partition workers than partitions when checked after cycles:%s", s.c_str());
  }
  int cycles_run = injected / std::max(1, opt.faults_per_cycle);
  if (first_failure) say("%d of %d cycles ended with every view exact; the first that did not: cycle %d", survived,
                         cycles_run, first_failure);
  printf("cycles survived: %d, faults: %d, events lost: %lld, events doubled: %lld\n", survived, injected,
         total_lost, total_doubled);
  for (const auto& v : views) {
    if (v.ever_wrong)
      verdict(false, "faults %s seed %u: %s wrong since cycle %d (now %lld events lost, %lld doubled)",
              opt.profile.c_str(), opt.seed, v.name.c_str(), v.first_wrong_cycle, v.lost, v.doubled);
    else if (v.late_total)
      verdict(false, "faults %s seed %u: %s counted %lld events as late", opt.profile.c_str(), opt.seed,
              v.name.c_str(), v.late_total);
    else
      verdict(true, "faults %s seed %u: %s equals its batch query after every cycle", opt.profile.c_str(), opt.seed,
              v.name.c_str());
  }
  std::set<int> seen;
  for (int t = 0; t < kFaultTypes; ++t)
    if (fstats[t].injected) seen.insert(t);
  bool enough = injected >= opt.min_faults && (int)seen.size() == (int)allowed.size();
  if (opt.only.empty() && opt.cycles * opt.faults_per_cycle >= opt.min_faults)
    verdict(enough, "faults %s seed %u: %d faults injected (at least %d), all %zu fault types", opt.profile.c_str(),
            opt.seed, injected, opt.min_faults, allowed.size());
  if (failures == 0)
    verdict(true, "faults %s profile seed %u: %d faults, every view exact", opt.profile.c_str(), opt.seed, injected);
  return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    return driver_main(argc, argv);
  } catch (const std::exception& e) {
    verdict(false, "faults: the driver stopped: %s", one_line(e.what()).c_str());
    fflush(stdout);
    _exit(1);  // the loader and producer threads may still run
  }
}
