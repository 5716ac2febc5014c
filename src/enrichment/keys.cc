#include "dataflow/enrichment/keys.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>

#include <exception>

#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::enrichment {

using messagepipeline::Message;

namespace {

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

namespace {

// The SAX side of JsonPath::FindKeyIn: follows the path through the parser's events, keeping
// only the key a value stands for: a non-empty string. Not numbers: `{"deviceId": 7}` was never
// a key (the message passes on unenriched), and a lookup of "7" would change that silently.
// It mirrors what the document would hold: a later duplicate member replaces an earlier one
// (and everything below it), so any value read where the path runs resets the key, and only a
// string at the path's end sets it.
class PathKeySax {
 public:
  using Json = nlohmann::json;
  PathKeySax(const std::vector<JsonPath::Step>& steps, int max_depth)
      : steps_(steps), max_depth_(max_depth) {}

  bool null() { return Scalar(nullptr); }
  bool boolean(bool /*v*/) { return Scalar(nullptr); }
  bool number_integer(Json::number_integer_t /*v*/) { return Scalar(nullptr); }
  bool number_unsigned(Json::number_unsigned_t /*v*/) { return Scalar(nullptr); }
  bool number_float(Json::number_float_t /*v*/, const Json::string_t& /*s*/) {
    return Scalar(nullptr);
  }
  bool string(Json::string_t& v) { return Scalar(&v); }
  bool binary(Json::binary_t& /*v*/) { return Scalar(nullptr); }
  bool start_object(std::size_t /*n*/) { return Enter(true); }
  bool start_array(std::size_t /*n*/) { return Enter(false); }
  bool end_object() { return Leave(); }
  bool end_array() { return Leave(); }
  bool key(Json::string_t& name) {
    Frame& f = frames_.back();
    const std::size_t step = frames_.size() - 1;
    const auto* want =
        f.on_path && step < steps_.size() ? std::get_if<std::string>(&steps_[step]) : nullptr;
    f.key_on_path = want != nullptr && *want == name;
    return true;
  }
  template <typename Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const Exception& /*ex*/) {
    return false;
  }

  // Only meaningful once the whole text parsed.
  std::optional<std::string>& key() { return key_; }

 private:
  struct Frame {
    bool object;
    bool on_path;              // this container is the value at steps_[0, depth)
    bool key_on_path = false;  // objects: the member being read is the next step
    std::size_t index = 0;     // arrays: the element being read
  };

  // Whether the value about to be read is at steps_[0, frames_.size()].
  [[nodiscard]] bool NextValueOnPath() const {
    if (frames_.empty()) return false;  // the document itself; the path has at least one step
    const Frame& f = frames_.back();
    const std::size_t step = frames_.size() - 1;
    if (!f.on_path || step >= steps_.size()) return false;
    if (f.object) return f.key_on_path;
    const auto* index = std::get_if<std::size_t>(&steps_[step]);
    return index != nullptr && *index == f.index;
  }
  [[nodiscard]] bool AtPathEnd() const { return frames_.size() == steps_.size(); }

  bool Scalar(const std::string* text) {
    if (NextValueOnPath()) {
      key_.reset();
      if (AtPathEnd() && text != nullptr && !text->empty()) key_ = *text;
    }
    NextElement();
    return true;
  }
  bool Enter(bool object) {
    if (static_cast<int>(frames_.size()) >= max_depth_) return false;  // too deep: no key
    const bool on_path = frames_.empty() || NextValueOnPath();
    if (!frames_.empty() && on_path) key_.reset();  // replaces what was read there before
    frames_.push_back(Frame{.object = object, .on_path = on_path});
    return true;
  }
  bool Leave() {
    frames_.pop_back();
    NextElement();
    return true;
  }
  void NextElement() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
  }

  const std::vector<JsonPath::Step>& steps_;
  const int max_depth_;
  std::vector<Frame> frames_;
  std::optional<std::string> key_;
};

}  // namespace

std::optional<std::string> JsonPath::FindKeyIn(std::string_view json_text,
                                               const messagepipeline::JsonLimits& limits) const {
  if (json_text.size() > limits.max_bytes) return std::nullopt;
  PathKeySax sax(steps_, limits.max_depth);
  try {
    if (!nlohmann::json::sax_parse(json_text.data(), json_text.data() + json_text.size(), &sax)) {
      return std::nullopt;  // not JSON, or too deep
    }
  } catch (const std::exception&) {  // only allocation failures can get here
    return std::nullopt;
  }
  return std::move(sax.key());
}

KeyExtractor<std::string> PayloadPathKey(JsonPath path) {
  return [path = std::move(path)](const Message& m) -> std::optional<std::string> {
    // Device data: within the JSON limits, or no key (the message passes on unenriched).
    return path.FindKeyIn(m.data.payload);
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
