// scripts/demo.sh end to end in --quick mode (20 QAD steps, 4096 held-out tokens): the table it
// writes, the files it promises, the re-run that reuses every finished step, and its refusals.
// The synthetic-teacher path runs too where spm_train (Debian package sentencepiece) and node
// are installed.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"
#include "fixtures/test_paths.h"

namespace {
namespace fs = std::filesystem;

const std::string kSource = EDGERAZOR_SOURCE_DIR;
const std::string kBin = EDGERAZOR_BIN_DIR;
const std::string kData = EDGERAZOR_SHARED_DATA_DIR;

using edgerazor_test::read_file;
using edgerazor_test::Result;

Result run_demo(const std::string& args) {
  return edgerazor_test::run_merged("EDGERAZOR_BIN_DIR='" + kBin + "' EDGERAZOR_SHARED_DATA='" + kData + "' '" +
                                    kSource + "/scripts/demo.sh' " + args);
}

bool have(const std::string& program) {
  return std::system(("command -v " + program + " >/dev/null 2>&1").c_str()) == 0;
}

// The table rows of results.md: first cell -> the other cells.
std::map<std::string, std::vector<std::string>> table_rows(const std::string& markdown) {
  std::map<std::string, std::vector<std::string>> rows;
  std::istringstream in(markdown);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| ", 0) != 0 || line.rfind("| model", 0) == 0) continue;
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream cs(line.substr(1));
    while (std::getline(cs, cell, '|')) {
      const auto b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      if (b != std::string::npos) cells.push_back(cell.substr(b, e - b + 1));
    }
    if (cells.size() == 8) rows[cells[0]] = std::vector<std::string>(cells.begin() + 1, cells.end());
  }
  return rows;
}

double number(const std::string& cell) { return std::stod(cell); }

class DemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    out_ = fs::temp_directory_path() / ("er_demo_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(out_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(out_);
  }
  fs::path out_;
};

// Columns after the model name: bits, packed, GGUF, perplexity, trainer ppl, llama.cpp tok/s, ours.
enum Col { kBits, kPacked, kGguf, kPpl, kTrainerPpl, kLlama, kOurs };

// teacher_best: the teacher's perplexity beats the students' (not for the synthetic teacher, which
// --quick pretrains so briefly that QAD, whose CE keeps training, can overtake it).
void check_results(const fs::path& out, const std::string& teacher, const std::string& steps, bool teacher_best) {
  const std::string md = read_file(out / "results.md");
  const auto rows = table_rows(md);
  ASSERT_EQ(rows.size(), 5u) << md;
  const std::string qad158 = "QAD W1.58-A8-KV8 (" + steps + " steps)", qad188 = "QAD W1.88-A8-KV8 (" + steps + " steps)";
  for (const auto& name : {teacher, std::string("PTQ W1.58-A8-KV8"), qad158, std::string("PTQ W1.88-A8-KV8"), qad188}) {
    ASSERT_TRUE(rows.count(name)) << "no row '" << name << "' in\n" << md;
    const auto& r = rows.at(name);
    EXPECT_TRUE(std::isfinite(number(r[kPpl])) && number(r[kPpl]) > 1.0) << name << ": " << r[kPpl];
    EXPECT_TRUE(std::isfinite(number(r[kTrainerPpl])) && number(r[kTrainerPpl]) > 1.0) << name;
    EXPECT_GT(number(r[kOurs]), 0.0) << name;
    EXPECT_NE(r[kLlama], "") << name;  // a number, or n/a when llama.cpp could not be installed
  }
  // Bits per weight from the export reports: ternary + INT4 embedding ~1.8-1.9, SQMP 1.88 more.
  const double b158 = number(rows.at(qad158)[kBits]), b188 = number(rows.at(qad188)[kBits]);
  EXPECT_GT(b158, 1.58);
  EXPECT_LT(b158, 2.0);
  EXPECT_GT(b188, b158);
  EXPECT_LT(b188, 2.5);
  EXPECT_EQ(rows.at("PTQ W1.58-A8-KV8")[kBits], rows.at(qad158)[kBits]);
  // Even 20 QAD steps recover part of what PTQ loses.
  for (const auto* q : {"1.58", "1.88"}) {
    const double ptq = number(rows.at(std::string("PTQ W") + q + "-A8-KV8")[kPpl]);
    const double qad = number(rows.at(std::string("QAD W") + q + "-A8-KV8 (" + steps + " steps)")[kPpl]);
    EXPECT_LT(qad, ptq) << q;
    if (teacher_best) EXPECT_LT(number(rows.at(teacher)[kPpl]), qad) << q;
  }
  for (const auto* f : {"gguf/teacher-f16.gguf", "gguf/ptq-w1.58.gguf", "gguf/qad-w1.58.gguf", "gguf/ptq-w1.88.gguf",
                        "gguf/qad-w1.88.gguf", "packed/qad-w1.58.packed.safetensors",
                        "packed/qad-w1.88.packed.safetensors", "eval/teacher.json", "samples/qad-w1.58.generate.jsonl"}) {
    ASSERT_TRUE(fs::is_regular_file(out / f)) << f;
    EXPECT_GT(fs::file_size(out / f), 0u) << f;
  }
  EXPECT_EQ(read_file(out / "gguf/qad-w1.58.gguf").substr(0, 4), "GGUF");
  EXPECT_LT(fs::file_size(out / "gguf/qad-w1.58.gguf"), fs::file_size(out / "gguf/teacher-f16.gguf"));
  for (const auto* svg : {"loss.svg", "eval.svg"}) {
    const std::string s = read_file(out / svg);
    EXPECT_NE(s.find("<svg"), std::string::npos) << svg;
    EXPECT_NE(s.find("QAD W1.58"), std::string::npos) << svg;  // legend of both runs
    EXPECT_NE(s.find("QAD W1.88"), std::string::npos) << svg;
  }
  // The downstream-task table: the same five models, each metric a number with its stderr.
  size_t task_rows = 0;
  std::istringstream lines(md);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(" ± ") == std::string::npos) continue;
    ++task_rows;
    const std::string cloze = line.substr(line.find('|', 1) + 2);
    const double acc = std::stod(cloze);
    EXPECT_GE(acc, 0.0) << line;
    EXPECT_LE(acc, 1.0) << line;
  }
  EXPECT_EQ(task_rows, 5u) << md;
  for (const auto* f : {"eval/tasks-teacher/results.json", "eval/tasks-qad-w1.58/samples_story_cloze.jsonl", "tasks/story_cloze.yaml"})
    EXPECT_TRUE(fs::is_regular_file(out / f)) << f;
  EXPECT_NE(read_file(out / "tasks.svg").find("QAD W1.58"), std::string::npos);  // task accuracy during QAD
  EXPECT_NE(md.find("Sample story"), std::string::npos);
  EXPECT_NE(md.find("> Once upon a time"), std::string::npos) << md;
  // nothing half-written is left behind
  for (const auto& e : fs::recursive_directory_iterator(out))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

TEST_F(DemoTest, QuickRunWritesTheTableAndReusesFinishedSteps) {
  if (!fs::is_regular_file(kData + "/models/stories260K-hf/model.safetensors")) GTEST_SKIP() << "no " << kData;
  const Result first = run_demo("--quick --out '" + out_.string() + "'");
  ASSERT_EQ(first.code, 0) << first.out;
  check_results(out_, "stories260K (fp32)", "20", true);
  const std::string ckpt = (out_ / "runs/qad-w1.58/checkpoints/step_20/model.safetensors").string();
  const auto written = fs::last_write_time(ckpt);

  const Result second = run_demo("--quick --out '" + out_.string() + "'");
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_NE(second.out.find("done before: " + (out_ / "runs/qad-w1.58/checkpoints/step_20").string()),
            std::string::npos)
      << second.out;
  EXPECT_EQ(fs::last_write_time(ckpt), written);
  check_results(out_, "stories260K (fp32)", "20", true);

  // Other settings into the same folder are refused, naming --fresh.
  const Result other = run_demo("--quick --steps 30 --out '" + out_.string() + "'");
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.out.find("--fresh"), std::string::npos) << other.out;
}

TEST_F(DemoTest, SyntheticTeacherWhenNoModelIsGiven) {
  if (!have("spm_train") || !have("node")) GTEST_SKIP() << "needs spm_train (Debian package sentencepiece) and node";
  const Result r = run_demo("--quick --synthetic --out '" + out_.string() + "'");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::is_regular_file(out_ / "runs/teacher/checkpoints/step_60/DONE"));
  EXPECT_TRUE(fs::is_regular_file(out_ / "teacher-loss.svg"));
  check_results(out_, "synthetic teacher (fp32)", "20", false);
}

TEST_F(DemoTest, RefusesBadFlagsAndForeignFolders) {
  Result r = run_demo("--steps 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--steps must be a positive integer"), std::string::npos) << r.out;
  r = run_demo("--bogus");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("unknown argument '--bogus'"), std::string::npos) << r.out;

  fs::create_directories(out_);
  std::ofstream(out_ / "precious.txt") << "keep me";
  r = run_demo("--quick --fresh --out '" + out_.string() + "'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("was not made by demo.sh"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(out_ / "precious.txt"), "keep me");
  r = run_demo("--quick --out '" + out_.string() + "'");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(read_file(out_ / "precious.txt"), "keep me");
}

}  // namespace
