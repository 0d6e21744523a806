// A checkpoint folder's manifest.json (what --resume trusts to pick a checkpoint): the input is the
// manifest; the folder beside it holds DONE, config.json and a sub-folder file it may list.
#include <filesystem>

#include "edgerazor/train/checkpoint_manifest.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string folder = [] {
    const auto dir = edgerazor_fuzz::scratch_dir() / "step_00000001";
    std::filesystem::create_directories(dir / "optimizer");
    edgerazor_fuzz::write_scratch("step_00000001/DONE", "");
    edgerazor_fuzz::write_scratch("step_00000001/config.json", "{}");
    edgerazor_fuzz::write_scratch("step_00000001/optimizer/state.bin", std::string(100, 'x'));
    return dir.string();
  }();
  edgerazor_fuzz::write_scratch("step_00000001/manifest.json", data, size);
  edgerazor_fuzz::expect_clear_errors([&] { edgerazor::train::verify_checkpoint(folder); });
  return 0;
}
