// The block mechanism of config_table.h on a made-up config: one row per key, nested blocks
// and lists of blocks included, gives the reading, the allowed keys, the schema and the
// reference together.
#include "config_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

#include "config_reader.h"

namespace dataflow::app {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

struct Item {
  std::string name;
  int weight = 1;
};
struct Inner {
  bool on = false;
};
struct Outer {
  std::string title;
  std::optional<Inner> inner;
  std::vector<Item> items;
};

const Block<Item>& ItemBlock() {
  static const auto* const block =
      new Block<Item>{.description = "an item",
                      .keys = {TextKey("name", &Item::name, "item name", true),
                               IntKey("weight", &Item::weight, 1, 10, "how heavy")}};
  return *block;
}
const Block<Inner>& InnerBlock() {
  static const auto* const block =
      new Block<Inner>{.keys = {BoolKey("on", &Inner::on, "switched on")}};
  return *block;
}
const Block<Outer>& OuterBlock() {
  static const auto* const block = new Block<Outer>{
      .keys = {TextKey("title", &Outer::title, "a title"),
               OptionalBlockKey("inner", &Outer::inner, &InnerBlock, "the inner block"),
               ListKey("items", &Outer::items, &ItemBlock, "the items", /*required=*/true)},
      .check = [](yaml_config::Reader& r, const YAML::Node&, const std::string& path, Outer& out) {
        if (out.title == "bad") r.Error(path, "a bad title");
      }};
  return *block;
}

struct Parsed {
  Outer out;
  std::vector<std::string> errors;
};
Parsed Read(const std::string& yaml) {
  std::vector<ConfigError> errors;
  std::vector<std::string> withheld;
  yaml_config::Reader r(errors, nullptr, withheld);
  Parsed p;
  ReadBlock(OuterBlock(), r, YAML::Load(yaml), "top", p.out);
  for (const auto& e : errors) p.errors.push_back(e.ToString());
  return p;
}

TEST(ConfigTableTest, ReadsNestedBlocksAndLists) {
  const Parsed p = Read("{title: t, inner: {on: true}, items: [{name: a, weight: 3}, {name: b}]}");
  EXPECT_TRUE(p.errors.empty()) << p.errors.front();
  EXPECT_EQ(p.out.title, "t");
  ASSERT_TRUE(p.out.inner.has_value());
  EXPECT_TRUE(p.out.inner->on);
  ASSERT_EQ(p.out.items.size(), 2u);
  EXPECT_EQ(p.out.items[0].weight, 3);
  EXPECT_EQ(p.out.items[1].name, "b");
  EXPECT_EQ(p.out.items[1].weight, 1);
}

TEST(ConfigTableTest, ErrorsNameTheNestedPath) {
  const Parsed p =
      Read("{title: bad, inner: {of: 1}, items: [{weight: 11}, {name: x, colour: red}]}");
  EXPECT_THAT(
      p.errors,
      ::testing::ElementsAre(
          "top.inner.of: unknown key (expected one of: on)", "top.items[0].name: missing",
          "top.items[0].weight: must be between 1 and 10, got 11",
          "top.items[1].colour: unknown key (expected one of: name, weight)", "top: a bad title"));
  EXPECT_THAT(Read("{title: t}").errors, ::testing::ElementsAre("top.items: missing"));
}

TEST(ConfigTableTest, SchemaAndReferenceFollowTheRows) {
  const Json s = BlockSchema(OuterBlock(), "outer");
  EXPECT_EQ(s["additionalProperties"], false);
  EXPECT_EQ(s["required"], Json::array({"items"}));
  const Json& items = s["properties"]["items"];
  EXPECT_EQ(items["minItems"], 1);
  EXPECT_EQ(items["items"]["required"], Json::array({"name"}));
  EXPECT_EQ(items["items"]["properties"]["weight"]["default"], 1);
  EXPECT_EQ(s["properties"]["inner"]["properties"]["on"]["default"], false);

  const std::string doc = BlockReference(OuterBlock(), "outer");
  EXPECT_THAT(doc, HasSubstr("#### `outer`"));
  EXPECT_THAT(doc, HasSubstr("| `items` | list of mappings | required | the items |"));
  EXPECT_THAT(doc, HasSubstr("#### `outer.inner`"));
  EXPECT_THAT(doc, HasSubstr("#### `outer.items[]`"));
  EXPECT_THAT(doc, HasSubstr("| `weight` | integer 1–10 | `1` | how heavy |"));
}

}  // namespace
}  // namespace dataflow::app
