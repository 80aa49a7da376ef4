#include "engine/decoder.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace velostream::engine;

namespace {

// ts timestamptz, delay int, distance int, origin text, destination text, price numeric, ok bool
std::vector<FieldSpec> flight_fields() {
  return {{"ts", FieldKind::kTimestampTz, 0}, {"delay", FieldKind::kInt32, 1}, {"distance", FieldKind::kInt32, 2},
          {"origin", FieldKind::kText, 3},    {"destination", FieldKind::kText, 4},
          {"price", FieldKind::kNumeric, 5},  {"ok", FieldKind::kBool, 6}};
}

void prepare(RecordBatch* b) {
  b->columns.resize(7);
  auto fields = flight_fields();
  for (auto& f : fields) {
    b->columns[f.column].type = storage_type(f.kind);
    b->columns[f.column].used = true;
  }
  b->reset(4);
}

// 2001-01-01T00:01:00Z in microseconds since 2000-01-01.
constexpr int64_t kJan1 = (366LL * 86400 + 60) * 1000000;

}  // namespace

TEST(Fields, TimestampsFollowIso8601) {
  Column c;
  c.type = Type::kInt64;
  c.resize(1);
  Arena arena;
  std::string err;
  ASSERT_TRUE(parse_field(FieldKind::kTimestampTz, "2001-01-01T00:01:00Z", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.i64[0], kJan1);
  ASSERT_TRUE(parse_field(FieldKind::kTimestampTz, "2001-01-01 02:01:00+02:00", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.i64[0], kJan1);
  ASSERT_TRUE(parse_field(FieldKind::kTimestampTz, "2001-01-01T00:01:00.5Z", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.i64[0], kJan1 + 500000);
  ASSERT_TRUE(parse_field(FieldKind::kTimestampTz, "1969-12-31T23:59:59Z", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.i64[0], -946684800LL * 1000000 - 1000000);
  EXPECT_FALSE(parse_field(FieldKind::kTimestampTz, "2001-02-30T00:00:00Z", &c, 0, &arena, &err));
  EXPECT_FALSE(parse_field(FieldKind::kTimestampTz, "yesterday", &c, 0, &arena, &err));
  ASSERT_TRUE(parse_field(FieldKind::kDate, "2000-01-02", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.i64[0], 1);
}

// timestamp without time zone ignores a zone in its input, as PostgreSQL
// does: '2001-01-01 02:01:00+02'::timestamp is 2001-01-01 02:01:00.
TEST(Fields, TimestampWithoutZoneIgnoresTheOffset) {
  Column c;
  c.type = Type::kInt64;
  c.resize(1);
  Arena arena;
  std::string err;
  const int64_t two_hours = 2LL * 3600 * 1000000;
  ASSERT_TRUE(parse_field(FieldKind::kTimestamp, "2001-01-01 02:01:00+02:00", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.i64[0], kJan1 + two_hours);
  ASSERT_TRUE(parse_field(FieldKind::kTimestamp, "2001-01-01T00:01:00Z", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.i64[0], kJan1);
  ASSERT_TRUE(parse_field(FieldKind::kTimestamp, "2001-01-01 00:01:00", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.i64[0], kJan1);
  EXPECT_FALSE(parse_field(FieldKind::kTimestamp, "2001-01-01 00:01:00+25", &c, 0, &arena, &err));
}

// PostgreSQL refuses year 0000 ('0000-01-01'::date: date/time field value out
// of range); so do the decoders (the message becomes a dead letter).
TEST(Fields, YearZeroIsRefusedAsByPostgres) {
  Column c;
  c.type = Type::kInt64;
  c.resize(1);
  Arena arena;
  std::string err;
  EXPECT_FALSE(parse_field(FieldKind::kDate, "0000-01-01", &c, 0, &arena, &err));
  EXPECT_FALSE(parse_field(FieldKind::kTimestampTz, "0000-12-31T23:00:00Z", &c, 0, &arena, &err));
  EXPECT_FALSE(parse_field(FieldKind::kTimestamp, "0000-06-01 00:00:00", &c, 0, &arena, &err));
  ASSERT_TRUE(parse_field(FieldKind::kDate, "0001-01-01", &c, 0, &arena, &err)) << err;
}

TEST(Fields, IntegersAreRangeChecked) {
  Column c;
  c.type = Type::kInt64;
  c.resize(1);
  Arena arena;
  std::string err;
  EXPECT_TRUE(parse_field(FieldKind::kInt32, " -42 ", &c, 0, &arena, &err));
  EXPECT_EQ(c.i64[0], -42);
  EXPECT_FALSE(parse_field(FieldKind::kInt32, "2147483648", &c, 0, &arena, &err));
  EXPECT_FALSE(parse_field(FieldKind::kInt16, "40000", &c, 0, &arena, &err));
  EXPECT_FALSE(parse_field(FieldKind::kInt64, "12abc", &c, 0, &arena, &err));
  EXPECT_NE(err.find("bigint"), std::string::npos);
}

TEST(Decoder, CsvFieldsQuotingAndNulls) {
  MessageDecoder d(MessageFormat::kCsv, flight_fields());
  RecordBatch b;
  prepare(&b);
  std::string err;
  ASSERT_TRUE(d.decode("2001-01-01T00:01:00Z,33,2176,LAS,PHL,1.50,t", &b, 0, &err)) << err;
  EXPECT_EQ(b.columns[0].i64[0], kJan1);
  EXPECT_EQ(b.columns[1].i64[0], 33);
  EXPECT_EQ(b.columns[3].str[0], "LAS");
  EXPECT_EQ(b.columns[5].dec[0].to_string(), "1.50");
  EXPECT_EQ(b.columns[6].i64[0], 1);
  ASSERT_TRUE(d.decode("2001-01-01T00:01:00Z,,2176,\"A,\"\"B\"\"\",\"\",,f\n", &b, 1, &err)) << err;
  EXPECT_EQ(b.columns[1].null[1], 1);
  EXPECT_EQ(b.columns[3].str[1], "A,\"B\"");
  EXPECT_EQ(b.columns[4].null[1], 0);
  EXPECT_EQ(b.columns[4].str[1], "");
  EXPECT_EQ(b.columns[5].null[1], 1);
}

TEST(Decoder, CsvRejectsMalformedMessages) {
  MessageDecoder d(MessageFormat::kCsv, flight_fields());
  RecordBatch b;
  prepare(&b);
  std::string err;
  EXPECT_FALSE(d.decode("2001-01-01T00:01:00Z,33,2176,LAS", &b, 0, &err));
  EXPECT_NE(err.find("expected 7 fields"), std::string::npos) << err;
  EXPECT_FALSE(d.decode("2001-01-01T00:01:00Z,late,2176,LAS,PHL,1,t", &b, 0, &err));
  EXPECT_NE(err.find("column \"delay\""), std::string::npos) << err;
  EXPECT_FALSE(d.decode("a,b,c,d,e,f,g,h", &b, 0, &err));
  EXPECT_FALSE(d.decode("\"open,1,2,3,4,5,6", &b, 0, &err));
  EXPECT_FALSE(d.decode("", &b, 0, &err));
  EXPECT_EQ(err, "empty message");
  EXPECT_FALSE(d.decode("2001-01-01T00:01:00Z,1,2,\xff\xfe,PHL,1,t", &b, 0, &err));
  EXPECT_NE(err.find("UTF-8"), std::string::npos) << err;
}

TEST(Decoder, JsonKeysAreColumnNames) {
  MessageDecoder d(MessageFormat::kJson, flight_fields());
  RecordBatch b;
  prepare(&b);
  std::string err;
  ASSERT_TRUE(d.decode(R"({"ts":"2001-01-01T00:01:00Z","delay":33,"origin":"LAS","price":12345678901234567890.25,"extra":[1],"ok":true})",
                       &b, 0, &err)) << err;
  EXPECT_EQ(b.columns[0].i64[0], kJan1);
  EXPECT_EQ(b.columns[1].i64[0], 33);
  EXPECT_EQ(b.columns[2].null[0], 1);  // missing key
  EXPECT_EQ(b.columns[3].str[0], "LAS");
  EXPECT_EQ(b.columns[4].null[0], 1);
  EXPECT_EQ(b.columns[5].dec[0].to_string(), "12345678901234567890.25");  // exact
  EXPECT_EQ(b.columns[6].i64[0], 1);
  ASSERT_TRUE(d.decode(R"({"delay": null, "destination": "\u00e9"})", &b, 1, &err)) << err;
  EXPECT_EQ(b.columns[1].null[1], 1);
  EXPECT_EQ(b.columns[4].str[1], "\xc3\xa9");
}

TEST(Decoder, JsonRejectsMalformedMessages) {
  MessageDecoder d(MessageFormat::kJson, flight_fields());
  RecordBatch b;
  prepare(&b);
  std::string err;
  EXPECT_FALSE(d.decode(R"({"delay": "late"})", &b, 0, &err));
  EXPECT_NE(err.find("column \"delay\""), std::string::npos) << err;
  EXPECT_FALSE(d.decode(R"({"delay": 1)", &b, 0, &err));
  EXPECT_FALSE(d.decode(R"([1, 2])", &b, 0, &err));
  EXPECT_FALSE(d.decode(R"({"delay": {"a": 1}})", &b, 0, &err));
  EXPECT_FALSE(d.decode(R"({"delay": 3.5})", &b, 0, &err));
  EXPECT_FALSE(d.decode("not json", &b, 0, &err));
}

// Interval fields are parsed by the parser the glue layer installs
// (PostgreSQL's interval_in); without one they are refused, never guessed.
TEST(Fields, IntervalsUseTheInstalledParser) {
  Column c;
  c.type = Type::kInterval;
  c.resize(1);
  Arena arena;
  std::string err;
  set_interval_parser(nullptr);
  EXPECT_FALSE(parse_field(FieldKind::kInterval, "1 day", &c, 0, &arena, &err));
  EXPECT_NE(err.find("interval"), std::string::npos);
  set_interval_parser([](std::string_view text, Interval* out, std::string* error) {
    if (text != "1 day") {
      *error = "invalid input syntax for type interval";
      return false;
    }
    *out = Interval{0, 1, 0};
    return true;
  });
  ASSERT_TRUE(parse_field(FieldKind::kInterval, "1 day", &c, 0, &arena, &err)) << err;
  EXPECT_EQ(c.iv[0].day, 1);
  EXPECT_EQ(c.null[0], 0);
  EXPECT_FALSE(parse_field(FieldKind::kInterval, "soon", &c, 0, &arena, &err));
  EXPECT_EQ(err, "invalid input syntax for type interval");
  EXPECT_EQ(storage_type(FieldKind::kInterval), Type::kInterval);
  set_interval_parser(nullptr);
}
