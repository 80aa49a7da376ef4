// Decoding of stream messages (one record per message) into batch rows.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/batch.h"
#include "engine/fields.h"

namespace velostream::engine {

/// One data column of a stream: its name (JSON key), SQL kind, and the batch
/// column it fills.
struct FieldSpec {
  std::string name;
  FieldKind kind;
  int column;
};

/// Message formats.
///  - kCsv: one line per message, fields in the order of the stream's data
///    columns, RFC 4180 quoting; an unquoted empty field is NULL (as in
///    PostgreSQL's COPY ... CSV), "" is an empty string.
///  - kJson: one object per message; keys are column names, missing keys and
///    null are NULL, unknown keys are ignored. Parsed with simdjson's
///    On-Demand API; numbers are parsed from their exact text.
enum class MessageFormat : uint8_t { kCsv, kJson };

class JsonState;  // simdjson parser and its padded buffer (decoder.cpp)

/// Decodes messages of one format into rows. Reuses its buffers: no
/// allocation per message in steady state. Not thread-safe.
class MessageDecoder {
 public:
  MessageDecoder(MessageFormat format, std::vector<FieldSpec> fields);
  ~MessageDecoder();
  MessageDecoder(const MessageDecoder&) = delete;
  MessageDecoder& operator=(const MessageDecoder&) = delete;

  /// Decodes `payload` into row `row` of `batch` (every field column must be
  /// sized for it). Returns false with the reason in `*error` when the
  /// message is malformed; the row's contents are then unspecified.
  bool decode(std::string_view payload, RecordBatch* batch, size_t row, std::string* error);

 private:
  bool decode_csv(std::string_view payload, RecordBatch* batch, size_t row, std::string* error);
  bool decode_json(std::string_view payload, RecordBatch* batch, size_t row, std::string* error);

  MessageFormat format_;
  std::vector<FieldSpec> fields_;
  absl::flat_hash_map<std::string_view, size_t> by_name_;  // views into fields_ names
  std::string unquoted_;  // a quoted CSV field with "" escapes, unescaped
  std::vector<uint8_t> seen_;
  std::unique_ptr<JsonState> json_;
};

}  // namespace velostream::engine
