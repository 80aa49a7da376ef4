// libFuzzer target: the JSON message decoder (MessageDecoder, kJson, on
// simdjson), as a Kafka stream's worker runs it on every message.
//
// Each input is one message for a stream with a column of every type, keyed
// by the type's name ("i16", "num", "tstz", ...). It is decoded into two rows
// of one batch with the same decoder, which reuses its buffers: a successful
// decode must leave values the engine's contracts promise
// (check_decoded_row), and the same outcome and values both times.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.h"

namespace eng = velostream::engine;
namespace vf = velostream::fuzz;

namespace {

// Rows 0 and 1 of `b` hold the same values.
void check_rows_equal(const eng::RecordBatch& b, const std::vector<eng::FieldSpec>& fields) {
  for (const eng::FieldSpec& f : fields) {
    const eng::Column& c = b.columns[f.column];
    vf::check(c.null[0] == c.null[1], "same NULLs on a second decode");
    if (c.null[0]) continue;
    switch (c.type) {
      case eng::Type::kInt64: vf::check(c.i64[0] == c.i64[1], "same integer on a second decode"); break;
      case eng::Type::kFloat64:
        vf::check(std::memcmp(&c.f64[0], &c.f64[1], sizeof(double)) == 0, "same float on a second decode");
        break;
      case eng::Type::kNumeric:
        vf::check(c.dec[0].kind == c.dec[1].kind && c.dec[0].coef == c.dec[1].coef && c.dec[0].scale == c.dec[1].scale,
                  "same numeric on a second decode");
        break;
      case eng::Type::kText: vf::check(c.str[0] == c.str[1], "same text on a second decode"); break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<eng::FieldSpec> fields = vf::all_kinds_fields();
  static eng::MessageDecoder* decoder = new eng::MessageDecoder(eng::MessageFormat::kJson, fields);
  static eng::RecordBatch* batch = new eng::RecordBatch();
  vf::prepare_batch(batch, fields, 2);
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  std::string error;
  bool first = decoder->decode(payload, batch, 0, &error);
  if (first) vf::check_decoded_row(*batch, fields, 0);
  else vf::check(!error.empty(), "a rejected message has a reason");
  std::string error2;
  bool second = decoder->decode(payload, batch, 1, &error2);
  vf::check(first == second, "same outcome on a second decode");
  if (first) check_rows_equal(*batch, fields);
  else vf::check(error == error2, "same reason on a second decode");
  return 0;
}
