// libFuzzer target: the CSV message decoder (MessageDecoder, kCsv), as a
// Kafka stream's worker runs it on every message.
//
// Each input is one message, decoded (1) into a stream with a column of every
// type and (2) into eleven one-column streams, one per type, so that any text
// reaches every field parser. A successful decode must leave values the
// engine's contracts promise (check_decoded_row). The COPY fast-path parsers
// get the same text: what they accept, the general parser must accept with the
// same value.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "fuzz_common.h"

namespace eng = velostream::engine;
namespace vf = velostream::fuzz;

namespace {

struct Target {
  std::vector<eng::FieldSpec> fields;
  std::unique_ptr<eng::MessageDecoder> decoder;
  eng::RecordBatch batch;
};

// The stream of every type, then one one-column stream per type.
std::deque<Target>* targets() {
  static std::deque<Target>* t = [] {
    auto* v = new std::deque<Target>();
    std::vector<eng::FieldSpec> all = vf::all_kinds_fields();
    v->emplace_back().fields = all;
    for (const eng::FieldSpec& f : all) v->emplace_back().fields = {{f.name, f.kind, 0}};
    for (Target& t : *v) {
      t.decoder = std::make_unique<eng::MessageDecoder>(eng::MessageFormat::kCsv, t.fields);
      vf::prepare_batch(&t.batch, t.fields, 1);
    }
    return v;
  }();
  return t;
}

// What parse_pg_integer / parse_pg_timestamp accept, parse_field accepts too,
// with the same value.
void check_fast_paths(std::string_view s) {
  eng::Column c;
  c.type = eng::Type::kInt64;
  c.resize(1);
  eng::Arena arena;
  std::string error;
  int64_t v;
  if (eng::parse_pg_integer(s, INT32_MIN, INT32_MAX, &v)) {
    vf::check(eng::parse_field(eng::FieldKind::kInt32, s, &c, 0, &arena, &error), "COPY integer accepted by parse_field");
    vf::check(c.i64[0] == v, "COPY integer equals parse_field's");
  }
  if (eng::parse_pg_timestamp(s, true, &v)) {
    vf::check(eng::parse_field(eng::FieldKind::kTimestampTz, s, &c, 0, &arena, &error),
              "COPY timestamptz accepted by parse_field");
    vf::check(c.i64[0] == v, "COPY timestamptz equals parse_field's");
  }
  if (eng::parse_pg_timestamp(s, false, &v)) {
    vf::check(eng::parse_field(eng::FieldKind::kTimestamp, s, &c, 0, &arena, &error),
              "COPY timestamp accepted by parse_field");
    vf::check(c.i64[0] == v, "COPY timestamp equals parse_field's");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  std::string error;
  for (Target& t : *targets()) {
    t.batch.reset(1);
    if (t.decoder->decode(payload, &t.batch, 0, &error)) {
      vf::check_decoded_row(t.batch, t.fields, 0);
    } else {
      vf::check(!error.empty(), "a rejected message has a reason");
    }
  }
  check_fast_paths(payload);
  return 0;
}
