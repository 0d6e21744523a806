// Issue #18's repros, each as a test: hostile inputs end in a clear error naming what and where,
// exit 2, and no lost or half-written file. (Trainer-side repros: tests/train/trainer_test.cpp.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "edgerazor/core/error.h"
#include "edgerazor/core/files.h"
#include "edgerazor/model/model_config.h"
#include "edgerazor/text/sentencepiece_model.h"
#include "edgerazor/text/unicode.h"
#include "edgerazor/train/metrics.h"
#include "edgerazor/train/run_lock.h"
#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"

namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using edgerazor_test::kBin;
using edgerazor_test::kData;
using edgerazor_test::kStories;
using edgerazor_test::Result;
using edgerazor_test::run;
const std::string kValid = kData + "/text/tinystories-valid-sample.txt";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class Reliability : public edgerazor_test::TempDirTest {
 protected:
  // A copy of stories260K whose config.json has `key` set to `value` (JSON text).
  fs::path model_with(const std::string& key, const std::string& value) {
    const fs::path m = dir_ / ("m_" + key);
    fs::create_directories(m);
    for (const auto& e : fs::directory_iterator(kStories))
      fs::copy_file(e.path(), m / e.path().filename(), fs::copy_options::overwrite_existing);
    auto j = nlohmann::json::parse(read_file(m / "config.json"));
    j[key] = nlohmann::json::parse(value);
    std::ofstream(m / "config.json", std::ios::trunc) << j.dump();
    return m;
  }
  // edgerazor-train on the tiny config, its data replaced by an empty shard.
  std::string train_check(bool check = true) {
    edgerazor_test::write_file(path("t.bin"), "");
    return std::string("cd ") + EDGERAZOR_SOURCE_DIR + " && " + kBin + "/edgerazor-train configs/tiny-stories260k-w1.58.yaml " +
           (check ? "--check " : "") + "--set 'data.sources[0].paths=[" + path("t.bin") + "]' --set 'data.eval_sources[0].paths=[" +
           path("t.bin") + "]' --set run.output_dir=" + path("run") + " ";
  }
  fs::path stories_copy() {
    const fs::path m = dir_ / "M";
    fs::create_directories(m);
    for (const auto& e : fs::directory_iterator(kStories)) fs::copy_file(e.path(), m / e.path().filename());
    return m;
  }
};

TEST_F(Reliability, AbsurdModelSizesAreRefusedBeforeAllocating) {
  Result r = run(kBin + "/edgerazor-generate " + model_with("num_hidden_layers", "1000000000").string() + " --prompt hi");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("num_hidden_layers: 1000000000 makes a model of"));
  EXPECT_THAT(r.err, HasSubstr("more than this machine's memory"));
  r = run(kBin + "/edgerazor-eval " + model_with("intermediate_size", "100000000000").string() + " --text " + kValid);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("intermediate_size: 100000000000"));
  for (const char* bad : {"0", "-1", "1000000000000000"}) {
    r = run(kBin + "/edgerazor-eval " + model_with("max_position_embeddings", bad).string() + " --text " + kValid);
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_THAT(r.err, HasSubstr("config.json: max_position_embeddings:")) << bad;
  }
  // Parameter counts of real shapes stay exact: stories260K has 260k parameters (tied).
  const auto c = edgerazor::model::load_model_config(kStories);
  EXPECT_NEAR(edgerazor::model::parameter_count(c), 260000, 20000);
}

TEST_F(Reliability, SequencesBeyondMaxPositionsAreRefused) {
  Result r = run(kBin + "/edgerazor-eval " + kStories + " --text " + kValid + " --seq-len 4096");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--seq-len: 4096 is more than the model's 512 positions"));
  r = run(kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1,2,3 --max-new-tokens 600 --print-ids");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("max_new_tokens: the prompt (3 tokens) and 600 new tokens exceed the model's 512 positions"));
  r = run(train_check() + "--set data.seq_len=4096");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("data.seq_len: 4096 tokens per row is more than the 512 positions"));
}

TEST_F(Reliability, ThreadAndRankCountsAreBoundedByTheMachine) {
  Result r = run(kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1 --max-new-tokens 1 --threads 100000");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--threads: 100000 is more than the"));
  r = run(train_check(false) + "--nproc-per-node 1000 --set train.device=cpu");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--nproc-per-node: 1000 ranks, but this machine has"));
  // Environment variables beyond the cores are clamped with a warning, not obeyed.
  r = run("EDGERAZOR_NUM_THREADS=100000 " + kBin + "/edgerazor-generate " + kStories + " --prompt-ids 1 --max-new-tokens 1 --print-ids");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("EDGERAZOR_NUM_THREADS=100000 is more than the"));
}

TEST_F(Reliability, AFileSizeLimitIsReportedLikeAFullDisk) {
  // ulimit -f counts 512-byte blocks: 4 blocks cannot hold the shard.
  const Result r = run("ulimit -f 4; " + kBin + "/edgerazor-data encode --tokenizer " + kStories + " --in " + kValid +
                       " --out " + path("v.bin"));
  EXPECT_EQ(r.code, 2) << r.err;  // not 153 (SIGXFSZ)
  EXPECT_THAT(r.err, HasSubstr("file size limit exceeded (ulimit -f)"));
  EXPECT_FALSE(fs::exists(path("v.bin")));
  expect_no_tmp();
}

TEST_F(Reliability, EncodeRefusesDevicesFoldersAndItsOwnInput) {
  Result r = run(kBin + "/edgerazor-data encode --tokenizer " + kStories + " --in /dev/zero --out " + path("z.bin"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("/dev/zero: the input file must be a regular file, this is a character device"));
  r = run(kBin + "/edgerazor-data encode --tokenizer " + kStories + " --in " + dir_.string() + " --out " + path("d.bin"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("this is a folder"));
  EXPECT_FALSE(fs::exists(path("d.bin")));
  fs::copy_file(kValid, path("x.txt"));
  const std::string before = read_file(path("x.txt"));
  // The same file under another spelling: compared by inode.
  r = run(kBin + "/edgerazor-data encode --tokenizer " + kStories + " --in " + path("x.txt") + " --out " + dir_.string() + "/./x.txt");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("the output is the input"));
  EXPECT_EQ(read_file(path("x.txt")), before);
  r = run(kBin + "/edgerazor-data encode --tokenizer " + kStories + " --eos --eos-id -5 --in " + path("x.txt") + " --out " + path("e.bin"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--eos-id"));
}

TEST_F(Reliability, ExportRefusesToOverwriteItsSourceAndWritesAllOutputsOrNone) {
  const fs::path m = stories_copy();
  const std::string weights = read_file(m / "model.safetensors");
  Result r = run(kBin + "/edgerazor-export " + m.string() + " --preset w1.58a8kv8 --set function.w_block_size=64 --set function.kv_block_size=8 --set function.a_block_size=64 --set strict_blocks=false --format hf --out " + m.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("the output is the input"));
  r = run(kBin + "/edgerazor-export " + m.string() + " --preset w1.58a8kv8 --set function.w_block_size=64 --set function.kv_block_size=8 --set function.a_block_size=64 --set strict_blocks=false --format packed --out " + (m / "model.safetensors").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("model.safetensors"));
  EXPECT_EQ(read_file(m / "model.safetensors"), weights);
  r = run(kBin + "/edgerazor-export " + m.string() + " --preset w1.58a8kv8 --set function.w_block_size=64 --set function.kv_block_size=8 --set function.a_block_size=64 --set strict_blocks=false --format gguf --out " + path("m.gguf") +
          " --report " + path("nodir/r.json"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--report: folder"));
  EXPECT_FALSE(fs::exists(path("m.gguf")));
  // A new file beside the source is fine.
  r = run(kBin + "/edgerazor-export " + m.string() + " --preset w1.58a8kv8 --set function.w_block_size=64 --set function.kv_block_size=8 --set function.a_block_size=64 --set strict_blocks=false --format packed --out " + (m / "packed.safetensors").string());
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(Reliability, NonFiniteWeightsAndEmptyTextAreErrors) {
  const fs::path m = stories_copy();
  {  // NaN into the first float32 of the first tensor (the data begins after the 8-byte length + header)
    std::fstream f(m / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    uint64_t header = 0;
    f.read(reinterpret_cast<char*>(&header), 8);
    const auto j = nlohmann::json::parse(read_file(m / "model.safetensors").substr(8, header));
    std::string name;
    uint64_t begin = ~uint64_t{0};
    for (const auto& [k, v] : j.items())
      if (k != "__metadata__" && v["data_offsets"][0].get<uint64_t>() < begin) {
        begin = v["data_offsets"][0].get<uint64_t>();
        name = k;
      }
    f.seekp(static_cast<std::streamoff>(8 + header + begin));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    f.write(reinterpret_cast<const char*>(&nan), 4);
    f.close();
    Result r = run(kBin + "/edgerazor-generate " + m.string() + " --prompt-ids 1 --print-ids");
    EXPECT_EQ(r.code, 2);
    EXPECT_THAT(r.err, HasSubstr("tensor '" + name + "' holds 1 NaN or infinite value(s)"));
  }
  std::ofstream(path("empty.txt")).close();
  Result r = run(kBin + "/edgerazor-eval " + kStories + " --text " + path("empty.txt") + " --no-bos");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("nothing to evaluate"));
}

TEST_F(Reliability, RepeatedKeysAreErrorsNotSilentlyDropped) {
  const std::string cfg = read_file(std::string(EDGERAZOR_SOURCE_DIR) + "/configs/tiny-stories260k-w1.58.yaml");
  const size_t train = cfg.find("\ntrain:\n");
  ASSERT_NE(train, std::string::npos);
  std::string twice = cfg;
  twice.insert(train + 8, "  lr: 2.0e-3\n  lr: 5.0\n");
  std::ofstream(path("twice.yaml")) << twice;
  Result r = run("cd " + std::string(EDGERAZOR_SOURCE_DIR) + " && " + kBin + "/edgerazor-train " + path("twice.yaml") + " --check");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("train.lr: key given twice in one mapping"));
  std::ofstream(path("p.jsonl")) << "{\"prompt\": \"a\", \"prompt\": \"b\"}\n";
  r = run(kBin + "/edgerazor-generate " + kStories + " --prompts " + path("p.jsonl") + " --out " + path("o.jsonl"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("p.jsonl:1: prompt: given twice in one record"));
  std::ofstream(path("d.jsonl")) << "{\"text\": \"a\", \"text\": \"b\"}\n";
  r = run(kBin + "/edgerazor-data encode --format jsonl --tokenizer " + kStories + " --in " + path("d.jsonl") + " --out " + path("d.bin"));
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("key 'text' given twice"));
  // A nested --set names the flag, not line 1 of the config file.
  r = run("cd " + std::string(EDGERAZOR_SOURCE_DIR) + " && " + kBin +
          "/edgerazor-train configs/tiny-stories260k-w1.58.yaml --check --set 'train={lr: abc}'");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--set train={lr: abc}: train.lr: expected a number"));
  // Range errors say what is wanted, without the largest double written out.
  r = run(kBin + "/edgerazor-generate " + kStories + " --prompt hi --temperature -1");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--temperature: must be zero or more, got -1"));
  EXPECT_LT(r.err.size(), 200u);
}

TEST_F(Reliability, InvalidUtf8IsCountedAndReported) {
  std::ofstream(path("bad.txt"), std::ios::binary) << "Once upon a \xff\xfe time \xc3 there was.";
  const auto d = edgerazor::text::count_invalid_utf8(read_file(path("bad.txt")));
  EXPECT_EQ(d.invalid_sequences, 3u);
  EXPECT_EQ(d.first_offset, 12u);
  EXPECT_EQ(edgerazor::text::count_invalid_utf8("caf\xc3\xa9 \xef\xbf\xbd").invalid_sequences, 0u);  // é and a real U+FFFD
  const Result r = run(kBin + "/edgerazor-data encode --tokenizer " + kStories + " --in " + path("bad.txt") + " --out " + path("b.bin"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("3 invalid UTF-8 sequence(s), the first at byte 12, were replaced by U+FFFD"));
}

TEST_F(Reliability, LongLinesEncodeInPiecesToTheSameIds) {
  // TinyStories as one line of 3+ chunks: libsentencepiece in pieces (the default) gives the ids
  // of the line encoded whole (EDGERAZOR_SENTENCEPIECE_CHUNKS=0), for both SentencePiece models.
  std::string line = read_file(kValid);
  for (char& c : line)
    if (c == '\n') c = ' ';
  while (line.size() < 3 * edgerazor::text::kSentencePieceChunkBytes) line += "  " + line;
  std::ofstream(path("line.txt")) << line;
  EXPECT_GE(edgerazor::text::sentencepiece_chunks(line, edgerazor::text::kSentencePieceChunkBytes, true).size(), 3u);
  for (const std::string model : {kStories, kData + "/models/llama2-tokenizer"}) {
    if (!fs::exists(model)) continue;
    const std::string cmd = kBin + "/edgerazor-data encode --tokenizer " + model + " --in " + path("line.txt") + " --print-ids";
    const Result pieces = run(cmd), whole = run("EDGERAZOR_SENTENCEPIECE_CHUNKS=0 " + cmd);
    ASSERT_EQ(pieces.code, 0) << pieces.err;
    ASSERT_EQ(whole.code, 0) << whole.err;
    EXPECT_GT(pieces.out.size(), 100000u);
    EXPECT_TRUE(pieces.out == whole.out) << model << ": the pieces' ids differ from the whole line's";
  }
}

TEST_F(Reliability, SigtermRemovesTrackedTemporaries) {
  const std::string tmp = path("out.bin.tmp");
  const pid_t pid = ::fork();
  if (pid == 0) {
    edgerazor::files::install_signal_cleanup();
    edgerazor::files::track_temporary(tmp);
    std::ofstream(tmp) << "partial";
    ::raise(SIGTERM);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  EXPECT_FALSE(fs::exists(tmp));
}

TEST_F(Reliability, MetricsHistorySurvivesAFailedRewrite) {
  const std::string metrics = path("metrics.jsonl");
  {
    std::ofstream out(metrics);
    for (int step = 1; step <= 3; ++step)
      out << "{\"type\": \"train\", \"step\": " << step << ", \"pad\": \"" << std::string(3000, 'x') << "\"}\n";
  }
  const std::string before = read_file(metrics);
  const pid_t pid = ::fork();
  if (pid == 0) {  // the resume's rewrite of steps 1-2 (6 KB) under a 4 KB file size limit
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit {4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      edgerazor::train::MetricsLog log(metrics, 2);
    } catch (const edgerazor::FormatError& e) {
      ::_exit(std::string(e.what()).find("is unchanged") != std::string::npos ? 3 : 4);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3) << "the rewrite should fail with a clear error";
  EXPECT_EQ(read_file(metrics), before) << "history lost";
  expect_no_tmp();
}

TEST_F(Reliability, ASecondTrainerOnARunFolderIsRefusedWithTheHoldersPid) {
  const auto first = edgerazor::train::lock_run_folder(path("run"));
  EXPECT_TRUE(first.held());
  try {
    (void)edgerazor::train::lock_run_folder(path("run"));
    FAIL() << "a second lock was granted";
  } catch (const edgerazor::ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("is in use by another trainer (pid " + std::to_string(::getpid())));
  }
}

}  // namespace
