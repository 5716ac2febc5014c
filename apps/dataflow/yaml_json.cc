#include "yaml_json.h"

namespace dataflow::app {

nlohmann::json YamlToJson(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& kv : node) out[kv.first.as<std::string>()] = YamlToJson(kv.second);
    return out;
  }
  if (node.IsSequence()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : node) out.push_back(YamlToJson(item));
    return out;
  }
  if (!node.IsScalar()) return nullptr;
  if (node.Tag() != "!") {
    nlohmann::json parsed = nlohmann::json::parse(node.Scalar(), nullptr, false);
    if (!parsed.is_discarded() && !parsed.is_structured()) return parsed;
    if (node.Scalar() == "~") return nullptr;
  }
  return node.Scalar();
}

}  // namespace dataflow::app
