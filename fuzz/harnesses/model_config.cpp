// config.json: every key the zoo reads (architectures, sizes, rope scaling, tied embeddings);
// what parses must validate, size itself and print back without another kind of error.
#include "edgerazor/model/model_config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  edgerazor_fuzz::expect_clear_errors([&] {
    const auto config = edgerazor::model::parse_model_config(text, "fuzz/config.json");
    edgerazor::model::validate(config, "fuzz/config.json");
    (void)edgerazor::model::parameter_count(config);
    const std::string round_trip = edgerazor::model::model_config_to_json(config);
    // What we write must read back: a config we print but cannot parse would break export.
    const auto again = edgerazor::model::parse_model_config(round_trip, "fuzz/round-trip.json");
    edgerazor::model::validate(again, "fuzz/round-trip.json");
  });
  return 0;
}
