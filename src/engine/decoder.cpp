#include "engine/decoder.h"

#include <simdjson.h>

namespace velostream::engine {

class JsonState {
 public:
  simdjson::ondemand::parser parser;
  std::string buffer;  // payload copy with SIMDJSON_PADDING bytes of room
};

MessageDecoder::MessageDecoder(MessageFormat format, std::vector<FieldSpec> fields)
    : format_(format), fields_(std::move(fields)), seen_(fields_.size()) {
  for (size_t i = 0; i < fields_.size(); ++i) by_name_.emplace(std::string_view(fields_[i].name), i);
  if (format_ == MessageFormat::kJson) json_ = std::make_unique<JsonState>();
}

MessageDecoder::~MessageDecoder() = default;

bool MessageDecoder::decode(std::string_view payload, RecordBatch* b, size_t row, std::string* error) {
  if (payload.empty()) {
    *error = "empty message";
    return false;
  }
  return format_ == MessageFormat::kCsv ? decode_csv(payload, b, row, error) : decode_json(payload, b, row, error);
}

bool MessageDecoder::decode_csv(std::string_view s, RecordBatch* b, size_t row, std::string* error) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  size_t pos = 0, field = 0;
  for (;;) {
    std::string_view value;
    bool quoted = false;
    if (pos < s.size() && s[pos] == '"') {
      quoted = true;
      size_t start = ++pos;
      bool escaped = false;
      for (;;) {
        if (pos >= s.size()) {
          *error = "unterminated quoted field";
          return false;
        }
        if (s[pos] == '"') {
          if (pos + 1 < s.size() && s[pos + 1] == '"') { escaped = true; pos += 2; continue; }
          break;
        }
        ++pos;
      }
      value = s.substr(start, pos - start);
      ++pos;  // closing quote
      if (escaped) {
        unquoted_.clear();
        for (size_t i = 0; i < value.size(); ++i) {
          unquoted_.push_back(value[i]);
          if (value[i] == '"') ++i;
        }
        value = unquoted_;
      }
      if (pos < s.size() && s[pos] != ',') {
        *error = "unexpected character after a quoted field";
        return false;
      }
    } else {
      size_t end = s.find(',', pos);
      if (end == std::string_view::npos) end = s.size();
      value = s.substr(pos, end - pos);
      pos = end;
    }
    if (field >= fields_.size()) {
      *error = "more fields than the stream's " + std::to_string(fields_.size()) + " columns";
      return false;
    }
    const FieldSpec& f = fields_[field];
    Column& col = b->columns[f.column];
    if (!quoted && value.empty()) {
      col.null[row] = 1;
    } else if (!parse_field(f.kind, value, &col, row, &b->arena, error)) {
      *error = "column \"" + f.name + "\": " + *error;
      return false;
    }
    ++field;
    if (pos >= s.size()) break;
    ++pos;  // comma
  }
  if (field != fields_.size()) {
    *error = "expected " + std::to_string(fields_.size()) + " fields, found " + std::to_string(field);
    return false;
  }
  return true;
}

bool MessageDecoder::decode_json(std::string_view payload, RecordBatch* b, size_t row, std::string* error) {
  using namespace simdjson;
  JsonState& js = *json_;
  js.buffer.assign(payload.data(), payload.size());
  if (js.buffer.capacity() < payload.size() + SIMDJSON_PADDING) js.buffer.reserve(payload.size() + SIMDJSON_PADDING);
  std::fill(seen_.begin(), seen_.end(), 0);
  ondemand::document doc;
  if (js.parser.iterate(js.buffer.data(), payload.size(), js.buffer.capacity()).get(doc)) {
    *error = "invalid JSON";
    return false;
  }
  ondemand::object obj;
  if (doc.get_object().get(obj)) {
    *error = "JSON message is not an object";
    return false;
  }
  for (auto member : obj) {
    std::string_view key;
    ondemand::value val;
    ondemand::json_type type;
    if (member.unescaped_key().get(key) || member.value().get(val) || val.type().get(type)) {
      *error = "invalid JSON";
      return false;
    }
    auto it = by_name_.find(key);
    if (it == by_name_.end()) continue;  // unknown keys are ignored
    const FieldSpec& f = fields_[it->second];
    Column& col = b->columns[f.column];
    seen_[it->second] = 1;
    std::string_view text;
    switch (type) {
      case ondemand::json_type::null:
        col.null[row] = 1;
        continue;
      case ondemand::json_type::string:
        if (val.get_string().get(text)) { *error = "invalid JSON string"; return false; }
        break;
      case ondemand::json_type::number:
      case ondemand::json_type::boolean:
        text = val.raw_json_token();
        while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\t' || text.back() == '\r'))
          text.remove_suffix(1);
        if (type == ondemand::json_type::boolean && f.kind != FieldKind::kBool && f.kind != FieldKind::kText) {
          *error = "column \"" + f.name + "\": a JSON boolean for a non-boolean column";
          return false;
        }
        break;
      default:
        *error = "column \"" + f.name + "\": nested JSON objects and arrays are not supported";
        return false;
    }
    if (!parse_field(f.kind, text, &col, row, &b->arena, error)) {
      *error = "column \"" + f.name + "\": " + *error;
      return false;
    }
  }
  for (size_t i = 0; i < fields_.size(); ++i)
    if (!seen_[i]) b->columns[fields_[i].column].null[row] = 1;
  return true;
}

}  // namespace velostream::engine
