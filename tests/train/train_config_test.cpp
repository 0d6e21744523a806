// The run config: every section, the reference kd/qat blocks, --set overrides, errors that name
// file:line:col and the key, the resolved YAML round trip, schedules, and the shipped configs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "fixtures/fixtures.h"
#include "edgerazor/config/quant_presets.h"
#include "edgerazor/config/train_config.h"
#include "edgerazor/core/error.h"
#include "fixtures/test_paths.h"

namespace edgerazor::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kData = EDGERAZOR_SHARED_DATA_DIR;
const std::string kModel = kData + "/models/stories260K-hf";
const std::string kText = kData + "/text/tinystories-valid-sample.txt";  // any existing file will do

// A valid config; `extra` is appended (later keys of a section must not repeat earlier ones).
std::string base_yaml(const std::string& train_extra = "", const std::string& sections = "") {
  return "run:\n  name: t\n  output_dir: /tmp/er-train-config-test\n"
         "model:\n  teacher: " + kModel + "\n"
         "quantization:\n  preset: w1.58a8kv8_mobilellm\n"
         "distillation:\n  loss_task_alpha: 0.2\n  losses:\n"
         "    - {loss_function: eakld, alpha: 4.0, temperature: 1.0, confidence_k: 16}\n"
         "    - {loss_function: lafd, alpha: 1.0}\n"
         "data:\n  sources:\n    - {name: a, paths: [" + kText + "], weight: 2}\n"
         "  seq_len: 64\n"
         "train:\n  max_steps: 10\n" + train_extra + sections;
}

std::string error_of(const std::string& yaml, const std::vector<Override>& overrides = {}) {
  try {
    parse_train_config(yaml, "bad.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(TrainConfig, ParsesEverySectionWithDefaults) {
  const TrainConfig c = parse_train_config(base_yaml(), "run.yaml");
  EXPECT_EQ(c.run.name, "t");
  EXPECT_EQ(c.run.seed, 3407u);
  EXPECT_EQ(c.model.student, kModel);  // defaults to the teacher
  ASSERT_TRUE(c.quantization);
  EXPECT_EQ(c.quantization->preset, "w1_58a8kv8_mobilellm");
  EXPECT_EQ(c.quantization->function.w_block_size, 64);
  ASSERT_TRUE(c.distillation);
  EXPECT_DOUBLE_EQ(c.distillation->loss_task_alpha, 0.2);
  ASSERT_EQ(c.distillation->losses.size(), 2u);
  const auto& kd = c.distillation->losses[0];
  EXPECT_EQ(kd.name, "eakld");
  EXPECT_EQ(kd.loss_function, distill::LossFunction::kld_confidence);
  EXPECT_TRUE(kd.use_entropy);
  EXPECT_EQ(kd.confidence_k, 16);
  EXPECT_DOUBLE_EQ(kd.alpha, 4.0);
  const auto& fd = c.distillation->losses[1];
  EXPECT_EQ(fd.name, "lafd");
  EXPECT_EQ(fd.loss_type, distill::LossType::hidden_states);
  EXPECT_EQ(fd.layer_index, std::vector<std::string>{"adaptive"});
  ASSERT_EQ(c.data.sources.size(), 1u);
  EXPECT_DOUBLE_EQ(c.data.sources[0].weight, 2.0);
  EXPECT_EQ(c.data.seq_len, 64);
  EXPECT_EQ(c.data.seed, 3407u);  // the run seed unless data.seed is given
  // Paper optimizer defaults.
  EXPECT_DOUBLE_EQ(c.train.lr, 2e-5);
  EXPECT_DOUBLE_EQ(c.train.beta1, 0.9);
  EXPECT_DOUBLE_EQ(c.train.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.train.weight_decay, 0.01);
  EXPECT_DOUBLE_EQ(c.train.max_grad_norm, 1.0);
  EXPECT_EQ(c.train.precision, "auto");
  EXPECT_EQ(c.train.max_steps, 10);
  EXPECT_EQ(c.distributed.nproc_per_node, 1);
}

TEST(TrainConfig, NoDistillationMeansPlainCrossEntropy) {
  const std::string yaml = "model:\n  student: " + kModel + "\ndata:\n  sources: [{paths: " + kText +
                           "}]\ntrain:\n  epochs: 1\n";
  const TrainConfig c = parse_train_config(yaml, "pretrain.yaml");
  EXPECT_FALSE(c.distillation);
  EXPECT_FALSE(c.quantization);
  EXPECT_TRUE(c.model.teacher.empty());
  EXPECT_EQ(c.run.name, "pretrain");  // default: the file stem
  EXPECT_DOUBLE_EQ(c.train.epochs, 1.0);
}

// The paper's train.yaml blocks (spec quantization.md §5.6) next to our sections.
TEST(TrainConfig, AcceptsTheReferenceQatAndKdBlocks) {
  const std::string yaml = read_fixture("paper_qwen3-0.6b_w1.88_train.yaml") + R"(
model:
  teacher: )" + kModel + R"(
data:
  sources: [{paths: [)" + kText + R"(]}]
train:
  max_steps: 5
)";
  const TrainConfig c = parse_train_config(yaml, "train.yaml");
  ASSERT_TRUE(c.quantization);
  EXPECT_EQ(c.quantization->function.weight_function,
            "weight_quant_uniform_symmetric_clip_per_block_mp_int1_58_int4_static_row_wise_sparse");
  EXPECT_DOUBLE_EQ(c.quantization->function.w_mixed_precision_prop, 0.125);
  EXPECT_EQ(c.quantization->function.kv_block_size, 128);
  ASSERT_EQ(c.quantization->overrides.size(), 2u);
  ASSERT_TRUE(c.distillation);
  EXPECT_DOUBLE_EQ(c.distillation->loss_task_alpha, 0.1);
  ASSERT_EQ(c.distillation->losses.size(), 2u);
  const auto& l1 = c.distillation->losses[0];
  EXPECT_EQ(l1.name, "loss_1");  // the reference key names the loss in the logs
  EXPECT_EQ(l1.loss_function, distill::LossFunction::kld_confidence);
  EXPECT_TRUE(l1.use_entropy);
  EXPECT_EQ(l1.confidence_k, 16);
  EXPECT_DOUBLE_EQ(l1.temperature, 1.0);
  EXPECT_DOUBLE_EQ(l1.alpha, 2.0);
  const auto& l2 = c.distillation->losses[1];
  EXPECT_EQ(l2.name, "loss_2");
  EXPECT_EQ(l2.loss_type, distill::LossType::hidden_states);
  EXPECT_EQ(l2.layer_index, std::vector<std::string>{"adaptive"});
  EXPECT_DOUBLE_EQ(l2.alpha, 0.1);
}

TEST(TrainConfig, SetOverridesEditTheTreeBeforeTyping) {
  const TrainConfig c = parse_train_config(
      base_yaml(), "run.yaml",
      {parse_override("train.lr=1e-5"), parse_override("distillation.losses[0].alpha=3"),
       parse_override("train.precision=fp32"), parse_override("run.name=other"),
       parse_override("distributed.nproc_per_node=2"), parse_override("data.sources[0].weight=0.5")});
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-5);
  EXPECT_DOUBLE_EQ(c.distillation->losses[0].alpha, 3.0);
  EXPECT_EQ(c.train.precision, "fp32");
  EXPECT_EQ(c.run.name, "other");
  EXPECT_EQ(c.distributed.nproc_per_node, 2);  // a section the file did not have
  EXPECT_DOUBLE_EQ(c.data.sources[0].weight, 0.5);
  // An overridden value is checked like one from the file.
  EXPECT_THAT(error_of(base_yaml(), {parse_override("train.lr=fast")}),
              HasSubstr("--set train.lr=fast: expected a number, got 'fast'"));
  EXPECT_THAT(error_of(base_yaml(), {parse_override("train.lr_sched=cosine")}),
              HasSubstr("--set train.lr_sched=cosine: unknown key"));
  EXPECT_THAT(error_of(base_yaml(), {parse_override("distillation.losses[5].alpha=1")}),
              AllOf(HasSubstr("--set distillation.losses[5].alpha=1"), HasSubstr("past the end")));
  try {
    parse_override("train.lr");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("expected KEY=VALUE"));
  }
}

struct BadConfig {
  const char* what;
  std::string yaml;
  std::vector<std::string> expected;  // substrings of the message
};

TEST(TrainConfig, BadConfigsNameFileLineAndKey) {
  const std::string ok = base_yaml();
  const std::vector<BadConfig> cases = {
      {"unknown key", base_yaml("  learning_rat: 1e-4\n"), {"bad.yaml:19:3: train.learning_rat: unknown key", "lr_scheduler"}},
      {"wrong type", base_yaml("  lr: fast\n"), {"bad.yaml:19:7: train.lr: expected a number, got 'fast'"}},
      {"negative lr", base_yaml("  lr: -1e-4\n"), {"bad.yaml:19:7: train.lr: must be > 0"}},
      {"steps and epochs", base_yaml("  epochs: 2\n"), {"train.epochs: give exactly one of train.max_steps and train.epochs"}},
      {"unknown schedule", base_yaml("  lr_scheduler: cosin\n"), {"train.lr_scheduler: unknown schedule 'cosin'", "cosine_with_min_lr"}},
      {"two warmups", base_yaml("  warmup_steps: 5\n  warmup_ratio: 0.1\n"), {"bad.yaml:20:17: train.warmup_ratio: give warmup_steps or warmup_ratio, not both"}},
      {"precision", base_yaml("  precision: fp16\n"), {"train.precision: must be auto, bf16 or fp32, got 'fp16'"}},
      {"device", base_yaml("  device: tpu\n"), {"train.device: must be cpu, cuda, cuda:N or auto"}},
      {"zero batch", base_yaml("  micro_batch_size: 0\n"), {"train.micro_batch_size: must be >= 1"}},
      {"min_lr without its schedule", base_yaml("  min_lr: 1e-6\n"), {"train.min_lr: only cosine_with_min_lr uses min_lr"}},
      {"eval without eval data", base_yaml("  eval_interval: 5\n"), {"train.eval_interval: evaluation needs data.eval_sources"}},
      {"task file missing", base_yaml("", "eval:\n  tasks: [/nonexistent/cloze.yaml]\n"), {"eval.tasks[0]", "/nonexistent/cloze.yaml"}},
      {"task interval without tasks", base_yaml("", "eval:\n  interval: 5\n"), {"eval.interval: runs eval.tasks"}},
      {"unknown eval key", base_yaml("", "eval:\n  task: [a.yaml]\n"), {"eval.task: unknown key"}},
      {"accumulation", base_yaml("  accumulation: avg\n"), {"train.accumulation: must be mean or sum"}},
      {"sharding", base_yaml("", "distributed:\n  sharding: zero3\n"),
       {"distributed.sharding: must be none, optimizer, gradients or parameters", "'zero3'"}},
      {"non-integer steps", base_yaml("  gradient_accumulation_steps: 1.5\n"), {"train.gradient_accumulation_steps: expected an integer"}},
      {"unknown loss", std::string(ok).replace(ok.find("eakld"), 5, "kl_div"),
       {"bad.yaml:11:23: distillation.losses[0].loss_function: unknown loss_function 'kl_div'", "eakld"}},
      {"KL on hidden states", std::string(ok).replace(ok.find("{loss_function: lafd"), 20, "{loss_type: hidden_states, loss_function: kldr"),
       {"distillation.losses[1].loss_function: hidden_states losses must use compute_mse"}},
      {"duplicate loss names", std::string(ok).replace(ok.find("lafd, alpha"), 4, "eakld"), {"distillation.losses[1].name: duplicate loss name 'eakld'"}},
      {"attention loss", std::string(ok).replace(ok.find("{loss_function: lafd"), 20, "{loss_type: attentions, loss_function: kldr, layer_index: [1]"),
       {"distillation.losses[1].loss_type: 'attentions' losses need attention maps"}},
      {"teacher missing", std::string(ok).replace(ok.find("  teacher:"), 10, "  student:"), {"model.teacher: a distillation section needs a teacher"}},
      {"teacher path", std::string(ok).replace(ok.find(kModel), kModel.size(), "/nonexistent/model"),
       {"bad.yaml:5:12: model.teacher: no Hugging Face model folder (config.json) at '/nonexistent/model'"}},
      {"data weight", std::string(ok).replace(ok.find("weight: 2"), 9, "weight: -1"), {"data.sources[0].weight", "must be > 0"}},
      {"data path", std::string(ok).replace(ok.find(kText), kText.size(), "/nonexistent/*.bin"), {"data.sources[0].paths[0]", "/nonexistent/*.bin"}},
      {"no data", "model:\n  student: " + kModel + "\ntrain:\n  max_steps: 1\n", {"needs a 'data' section"}},
      {"preset", std::string(ok).replace(ok.find("w1.58a8kv8_mobilellm"), 20, "w1.58a7"), {"bad.yaml:7:11: quantization.preset", "unknown quantization preset 'w1.58a7'"}},
      {"two quant blocks", ok + "qat_configuration:\n  select: {target_types: [linear]}\n", {"qat_configuration: give either quantization or qat_configuration"}},
      {"kd method", "model:\n  teacher: " + kModel + "\nkd_configuration:\n  method: QAT\n  loss_1: {loss_function: eakld}\n" +
                        "data:\n  sources: [{paths: [" + kText + "]}]\ntrain:\n  max_steps: 1\n",
       {"bad.yaml:4:11: kd_configuration.method: must be KD"}},
      {"unknown top-level section", ok + "optimizer:\n  lr: 1\n", {"bad.yaml:19:1: optimizer: unknown key"}},
      {"YAML syntax", ok + "train2: [1, 2\n", {"bad.yaml:", "YAML syntax error"}},
      {"layer that is not a layer", std::string(ok).replace(ok.find("{loss_function: lafd"), 20, "{loss_function: lafd, layer_index: [2, top]"),
       {"distillation.losses[1].layer_index", "'top' is not a layer"}},
      {"key that is a mapping", ok + "? {a: 1}\n: 2\n", {"bad.yaml:", "a key must be a plain name"}},
      {"unknown loss key", std::string(ok).replace(ok.find("alpha: 4.0"), 10, "alpah: 4.0"), {"distillation.losses[0].alpah: unknown key"}},
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.what);
    const std::string message = error_of(bad.yaml);
    for (const auto& e : bad.expected) EXPECT_THAT(message, HasSubstr(e));
  }
  EXPECT_GE(cases.size(), 10u);
}

TEST(TrainConfig, ResolvedYamlRoundTrips) {
  const TrainConfig c = parse_train_config(base_yaml("  lr_scheduler: cosine_with_min_lr\n  min_lr: 1e-6\n"), "run.yaml");
  const std::string text = to_yaml(c);
  EXPECT_THAT(text, HasSubstr("# quantization: preset w1_58a8kv8_mobilellm, expanded"));
  EXPECT_THAT(text, HasSubstr("weight_function: weight_quant_uniform_symmetric_clip_per_block_int1_58"));
  EXPECT_THAT(text, HasSubstr("lr: 2e-05"));
  const TrainConfig again = parse_train_config(text, "run.yaml");
  std::string without_note = text;  // the expanded config no longer knows its preset's name
  without_note.erase(without_note.find("# quantization:"), std::string("# quantization: preset w1_58a8kv8_mobilellm, expanded\n").size());
  EXPECT_EQ(to_yaml(again), without_note);
  EXPECT_EQ(again.quantization->overrides.size(), c.quantization->overrides.size());
}

TEST(TrainConfig, ScheduleValues) {
  // constant_with_warmup, W = 10: the first update uses lr 0 (HF semantics).
  EXPECT_DOUBLE_EQ(lr_lambda("constant_with_warmup", 0, 10, 100), 0.0);
  EXPECT_DOUBLE_EQ(lr_lambda("constant_with_warmup", 5, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(lr_lambda("constant_with_warmup", 10, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_lambda("constant_with_warmup", 99, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_lambda("constant", 0, 0, 100), 1.0);
  // cosine, W = 10, N = 110: half way through the decay is 0.5, the end is 0.
  EXPECT_DOUBLE_EQ(lr_lambda("cosine", 10, 10, 110), 1.0);
  EXPECT_NEAR(lr_lambda("cosine", 60, 10, 110), 0.5, 1e-15);
  EXPECT_NEAR(lr_lambda("cosine", 35, 10, 110), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-15);
  EXPECT_NEAR(lr_lambda("cosine", 110, 10, 110), 0.0, 1e-15);
  EXPECT_DOUBLE_EQ(lr_lambda("linear", 60, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(lr_lambda("linear", 110, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(lr_lambda("linear", 4, 8, 110), 0.5);
  // cosine_with_min_lr: floor at min_lr / lr.
  EXPECT_NEAR(lr_lambda("cosine_with_min_lr", 110, 10, 110, 0.1), 0.1, 1e-15);
  EXPECT_NEAR(lr_lambda("cosine_with_min_lr", 60, 10, 110, 0.1), 0.55, 1e-15);
  // Warmup from a ratio: ceil(ratio * total), as HF.
  TrainSection t;
  t.warmup_ratio = 0.05;
  EXPECT_EQ(warmup_steps(t, 2000), 100);
  t.warmup_ratio = 0.01;
  EXPECT_EQ(warmup_steps(t, 4501), 46);
  t.warmup_ratio = 0;
  t.warmup_steps = 7;
  EXPECT_EQ(warmup_steps(t, 2000), 7);
}

// Every shipped config parses; the paper ones carry config::paper_recipe's numbers.
TEST(TrainConfig, ShippedConfigsMatchThePaperRecipes) {
  const fs::path dir = fs::path(EDGERAZOR_SOURCE_DIR) / "configs";
  int paper = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    const TrainConfig c = load_train_config(e.path().string(), {}, /*check_files=*/false);
    const std::string stem = e.path().stem().string();
    if (stem.rfind("tiny-", 0) == 0) continue;
    const size_t cut = stem.find("_w");
    ASSERT_NE(cut, std::string::npos);
    const std::string model = stem.substr(0, cut);
    const std::string bits = stem.substr(cut + 2, stem.find("a8") - cut - 2);
    const PaperRecipe r = paper_recipe(model, bits);
    ++paper;
    ASSERT_TRUE(c.quantization);
    EXPECT_EQ(c.quantization->preset, canonical_preset_name(r.preset));
    ASSERT_TRUE(c.distillation);
    EXPECT_DOUBLE_EQ(c.distillation->loss_task_alpha, r.loss_task_alpha);
    ASSERT_EQ(c.distillation->losses.size(), 2u);
    EXPECT_DOUBLE_EQ(c.distillation->losses[0].alpha, r.kld_alpha);
    EXPECT_EQ(c.distillation->losses[0].confidence_k, 16);
    EXPECT_DOUBLE_EQ(c.distillation->losses[0].temperature, 1.0);
    EXPECT_DOUBLE_EQ(c.distillation->losses[1].alpha, r.mse_alpha);
    EXPECT_DOUBLE_EQ(c.train.lr, r.learning_rate);
    EXPECT_DOUBLE_EQ(c.train.beta2, r.beta2);
    EXPECT_DOUBLE_EQ(c.train.weight_decay, r.weight_decay);
    EXPECT_EQ(c.train.lr_scheduler, r.lr_schedule);
    EXPECT_DOUBLE_EQ(c.train.warmup_ratio, r.warmup_ratio);
    EXPECT_EQ(c.train.micro_batch_size, r.per_device_batch);
    EXPECT_EQ(c.train.gradient_accumulation_steps, r.accumulation);
    EXPECT_EQ(c.distributed.nproc_per_node, r.gpus);
    EXPECT_EQ(c.data.seq_len, r.max_seq_len);
    EXPECT_DOUBLE_EQ(c.train.epochs, r.epochs);
    EXPECT_EQ(c.train.max_steps, r.max_steps);
    EXPECT_EQ(c.run.seed, static_cast<uint64_t>(r.seed));
  }
  EXPECT_EQ(paper, 12);
}

}  // namespace
}  // namespace edgerazor::config
