#include "dataflow/enrichment/keys.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>

#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::enrichment {

using messagepipeline::Message;

namespace {

// The key a JSON value stands for: a non-empty string. Not numbers: `{"deviceId": 7}` was never
// a key (the message passes on unenriched), and a lookup of "7" would change that silently.
std::optional<std::string> KeyText(const nlohmann::json* value) {
  if (value == nullptr || !value->is_string()) return std::nullopt;
  const auto& s = value->get_ref<const std::string&>();
  if (s.empty()) return std::nullopt;
  return s;
}

// Attribute values are strings: scalars other than strings are kept as their JSON text.
std::optional<std::string> AttributeText(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number() || value.is_boolean()) return value.dump();
  return std::nullopt;
}

}  // namespace

absl::StatusOr<JsonPath> JsonPath::Parse(std::string_view text) {
  JsonPath path;
  path.text_ = std::string(text);
  auto error = [&](std::size_t at, std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "JSON path \"", std::string(text), "\" at character ", at + 1, ": ", std::string(why)));
  };
  if (text.empty()) return error(0, "empty path");
  std::size_t i = 0;
  bool expect_name = true;  // at the start, and after a '.'
  while (i < text.size()) {
    if (text[i] == '[') {
      const std::size_t close = text.find(']', i);
      if (close == std::string_view::npos) return error(i, "'[' without ']'");
      const std::string_view digits = text.substr(i + 1, close - i - 1);
      std::size_t index = 0;
      if (digits.find_first_not_of("0123456789") != std::string_view::npos ||
          !absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &index)) {
        return error(i + 1, "an array index must be a non-negative integer");
      }
      path.steps_.emplace_back(index);
      i = close + 1;
      expect_name = false;
      continue;
    }
    if (text[i] == '.') {
      if (expect_name) return error(i, "empty member name");
      ++i;
      expect_name = true;
      if (i == text.size()) return error(i - 1, "the path ends with '.'");
      continue;
    }
    if (!expect_name) return error(i, "expected '.' or '[' after ']'");
    const std::size_t end = text.find_first_of(".[]", i);
    const std::size_t stop = end == std::string_view::npos ? text.size() : end;
    if (stop < text.size() && text[stop] == ']') return error(stop, "']' without '['");
    path.steps_.emplace_back(std::string(text.substr(i, stop - i)));
    i = stop;
    expect_name = false;
  }
  return path;
}

JsonPath JsonPath::Member(std::string name) {
  JsonPath path;
  path.text_ = name;
  path.steps_.emplace_back(std::move(name));
  return path;
}

const nlohmann::json* JsonPath::Find(const nlohmann::json& document) const {
  const nlohmann::json* at = &document;
  for (const Step& step : steps_) {
    if (const auto* name = std::get_if<std::string>(&step)) {
      if (!at->is_object()) return nullptr;
      auto it = at->find(*name);
      if (it == at->end()) return nullptr;
      at = &*it;
    } else {
      const std::size_t index = std::get<std::size_t>(step);
      if (!at->is_array() || index >= at->size()) return nullptr;
      at = &(*at)[index];
    }
  }
  return at;
}

KeyExtractor<std::string> PayloadPathKey(JsonPath path) {
  return [path = std::move(path)](const Message& m) -> std::optional<std::string> {
    // Device data: within the JSON limits, or no key (the message passes on unenriched).
    absl::StatusOr<nlohmann::json> j = messagepipeline::ParseJsonBounded(m.data.payload);
    if (!j.ok()) return std::nullopt;
    return KeyText(path.Find(*j));
  };
}

KeyExtractor<std::string> TopicSegmentKey(std::size_t index, std::string attribute) {
  return [index, attribute = std::move(attribute)](const Message& m) -> std::optional<std::string> {
    auto it = m.attributes.find(attribute);
    if (it == m.attributes.end()) return std::nullopt;
    std::size_t n = 0;
    for (absl::string_view segment : absl::StrSplit(it->second, '/')) {
      if (n++ == index) {
        if (segment.empty()) return std::nullopt;
        return std::string(segment);
      }
    }
    return std::nullopt;
  };
}

KeyExtractor<std::string> FirstKey(std::vector<KeyExtractor<std::string>> extractors) {
  return [extractors = std::move(extractors)](const Message& m) -> std::optional<std::string> {
    for (const auto& extract : extractors) {
      if (auto key = extract(m)) return key;
    }
    return std::nullopt;
  };
}

Applier<nlohmann::json> SelectingApplier(DocumentSelection selection) {
  return [selection = std::move(selection)](Message& message, const nlohmann::json& document) {
    auto& data = message.data.enrichment_data;
    if (!data.is_object()) data = nlohmann::json::object();
    if (!document.is_object()) {
      data["enrichment"] = document;
      return;
    }
    if (selection.fields.empty()) {
      data.update(document);
    } else {
      for (const FieldMapping& f : selection.fields) {
        auto it = document.find(f.from);
        if (it != document.end()) data[f.to.empty() ? f.from : f.to] = *it;
      }
    }
    for (const FieldMapping& a : selection.attributes) {
      auto it = document.find(a.from);
      if (it == document.end()) continue;
      if (auto text = AttributeText(*it)) message.attributes[a.to.empty() ? a.from : a.to] = *text;
    }
  };
}

}  // namespace dataflow::enrichment
