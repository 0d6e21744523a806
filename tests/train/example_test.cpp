// examples/custom_trainer builds against the installed EdgeRazor package (find_package) and its
// hand-written QAD loop improves the held-out loss of stories260K over PTQ.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include "fixtures/test_paths.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

int shell(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(CustomTrainerExample, BuildsAgainstTheInstalledPackageAndTrains) {
  const fs::path build_dir = fs::path(EDGERAZOR_BIN_DIR).parent_path();
  const std::string source = EDGERAZOR_SOURCE_DIR, data = EDGERAZOR_SHARED_DATA_DIR;
  const fs::path work = fs::temp_directory_path() / ("edgerazor-custom-trainer-" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work);
  if (shell("cmake --install " + build_dir.string() + " --prefix " + (work / "prefix").string() + " > " +
            (work / "install.log").string() + " 2>&1") != 0)
    GTEST_SKIP() << "cmake --install of the build tree failed (a target is not built); see " << work / "install.log";
  const std::string log = (work / "build.log").string();
  ASSERT_EQ(shell("cmake -S " + source + "/examples/custom_trainer -B " + (work / "build").string() +
                  " -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_PREFIX_PATH=" +
                  (work / "prefix").string() + " > " + log + " 2>&1"),
            0)
      << log;
  ASSERT_EQ(shell("cmake --build " + (work / "build").string() + " >> " + log + " 2>&1"), 0) << log;
  for (const char* split : {"train", "valid"})
    ASSERT_EQ(shell(std::string(EDGERAZOR_BIN_DIR) + "/edgerazor-data encode --tokenizer " + data +
                    "/models/stories260K-hf --bos --split auto --in " + data + "/text/tinystories-" + split +
                    "-sample.txt --out " + (work / split).string() + ".bin > /dev/null"),
              0);
  const std::string out = (work / "run.log").string();
  ASSERT_EQ(shell("EDGERAZOR_NUM_THREADS=1 " + (work / "build/custom_trainer").string() + " " + data +
                  "/models/stories260K-hf " + (work / "train.bin").string() + " " + (work / "valid.bin").string() +
                  " 30 > " + out + " 2>&1"),
            0)
      << out;
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("custom trainer ok"));
  EXPECT_THAT(text.str(), HasSubstr("held-out loss: PTQ"));
  std::cout << text.str();
  fs::remove_all(work);
}

}  // namespace
