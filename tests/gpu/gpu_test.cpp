// The CUDA and NCCL paths. On every machine: CUDA, NCCL and Gloo are compiled into this binary;
// the NCCL backend either starts (a GPU is there) or fails with CUDA's or NCCL's own error, never
// with "built without"; device specs resolve or fail with a clear reason; the CLI takes --device.
// With a GPU (torch::cuda::is_available()): the model on cuda matches the CPU, a bf16 autocast
// step trains, batches arrive through pinned memory, a one-rank NCCL all_reduce runs, and the
// allocator's memory statistics move. Without a GPU those skip and say why.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "edgerazor/config/train_config.h"
#include "edgerazor/core/error.h"
#include "edgerazor/distributed/process_group.h"
#include "edgerazor/io/hf_model.h"
#include "edgerazor/runtime/device.h"
#include "edgerazor/runtime/gpu_memory.h"
#include "edgerazor/train/precision.h"
#include "edgerazor/train/step.h"
#include "fixtures/subprocess.h"
#include "fixtures/temp_dir.h"
#include "fixtures/test_paths.h"

namespace {
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
namespace rt = edgerazor::runtime;
namespace dist = edgerazor::distributed;

#define SKIP_WITHOUT_GPU()                                                      \
  do {                                                                          \
    if (rt::cuda_device_count() == 0) GTEST_SKIP() << rt::cuda_unavailable_reason(); \
  } while (0)

TEST(GpuBuild, CudaNcclAndGlooAreCompiledIn) {
#if EDGERAZOR_TEST_EXPECT_CUDA
  EXPECT_TRUE(rt::built_with_cuda());
  EXPECT_TRUE(dist::has_nccl()) << "LibTorch has CUDA, so ProcessGroupNCCL must be compiled in";
#else
  GTEST_SKIP() << "this LibTorch was built without CUDA (CPU-only build)";
#endif
  EXPECT_TRUE(dist::has_gloo());
}

TEST(GpuBuild, NcclBackendIsInTheBinary) {
#if !EDGERAZOR_TEST_EXPECT_CUDA
  GTEST_SKIP() << "this LibTorch was built without CUDA (CPU-only build)";
#endif
  if (rt::cuda_device_count() > 0) {
    EXPECT_NO_THROW(dist::probe_backend("nccl", "cuda:0"));
    return;
  }
  // No GPU here: the backend must get as far as CUDA/NCCL and fail with their own message.
  try {
    dist::probe_backend("nccl", "cuda:0");
    FAIL() << "the NCCL backend started although no CUDA device is visible";
  } catch (const dist::DistributedError& e) {
    const std::string message = e.what();
    EXPECT_THAT(message, Not(HasSubstr("built without")));
    EXPECT_THAT(message, AnyOf(HasSubstr("CUDA"), HasSubstr("cuda"), HasSubstr("NCCL"))) << message;
    std::cout << "NCCL without a GPU: " << message << "\n";
  }
}

TEST(GpuBuild, GlooBackendStartsOnTheCpu) { EXPECT_NO_THROW(dist::probe_backend("gloo", "cpu")); }

TEST(DeviceSpec, ResolvesOrSaysWhy) {
  EXPECT_EQ(rt::resolve_device("cpu"), c10::Device(c10::kCPU));
  for (const char* bad : {"tpu", "cuda:", "cuda:x", "CUDA", "gpu", ""}) {
    EXPECT_FALSE(edgerazor::config::is_device_spec(bad)) << bad;
    EXPECT_THROW(rt::resolve_device(bad, 0, "train.device"), edgerazor::ConfigError) << bad;
  }
  EXPECT_TRUE(edgerazor::config::is_device_spec("cuda:12"));
  try {
    rt::resolve_device("tpu", 0, "--device");
    FAIL();
  } catch (const edgerazor::ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--device: expected cpu, cuda, cuda:N or auto, got 'tpu'"));
  }
  const int n = rt::cuda_device_count();
  try {
    rt::resolve_device("cuda:" + std::to_string(n), 0, "train.device");
    FAIL() << "cuda:" << n << " resolved with " << n << " devices";
  } catch (const edgerazor::ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("train.device"));
  }
  if (n == 0) {
    EXPECT_EQ(rt::resolve_device("auto"), c10::Device(c10::kCPU));
    try {
      rt::resolve_device("cuda", 0, "train.device");
      FAIL();
    } catch (const edgerazor::ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr(rt::cuda_unavailable_reason()));
    }
  } else {
    EXPECT_EQ(rt::resolve_device("auto"), c10::Device(c10::kCUDA, 0));
    EXPECT_EQ(rt::resolve_device("cuda", n - 1), c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(n - 1)));
    EXPECT_THROW(rt::resolve_device("cuda", n), edgerazor::ConfigError);  // LOCAL_RANK past the GPUs
  }
  EXPECT_FALSE(rt::gpu_memory(-1).valid);
}

class DeviceCli : public edgerazor_test::TempDirTest {};

TEST_F(DeviceCli, TrainTakesDeviceInYamlAndOnTheCommandLine) {
  // --check validates that the shards exist; their contents are not read.
  edgerazor_test::write_file(path("train.bin"), "");
  edgerazor_test::write_file(path("valid.bin"), "");
  // From the repository root: the config's relative paths resolve against the current directory.
  const std::string train = std::string("cd ") + EDGERAZOR_SOURCE_DIR + " && " + edgerazor_test::kBin + "/edgerazor-train " + EDGERAZOR_SOURCE_DIR +
                            "/configs/tiny-stories260k-w1.58.yaml --check --set 'data.sources[0].paths=[" +
                            path("train.bin") + "]' --set 'data.eval_sources[0].paths=[" + path("valid.bin") + "]'";
  const auto ok = edgerazor_test::run(train + " --device cuda:1");
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("device: cuda:1"));
  const auto set = edgerazor_test::run(train + " --set train.device=auto");
  ASSERT_EQ(set.code, 0) << set.err;
  EXPECT_THAT(set.out, HasSubstr("device: auto"));
  const auto bad = edgerazor_test::run(train + " --device tpu");
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("train.device=tpu: must be cpu, cuda, cuda:N or auto, got 'tpu'"));
}

TEST_F(DeviceCli, EvalOnCudaWithoutGpuIsAClearError) {
  if (rt::cuda_device_count() > 0) GTEST_SKIP() << "a GPU is visible: the error case needs a machine without one";
  const auto r = edgerazor_test::run(edgerazor_test::kBin + "/edgerazor-eval " + edgerazor_test::kStories +
                                     " --text " + edgerazor_test::kData + "/text/tinyshakespeare.txt --device cuda");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("--device: 'cuda' requested but no CUDA device is visible"));
}

// ---- with a GPU -------------------------------------------------------------------------------

TEST(Gpu, StoriesModelOnCudaMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  edgerazor::io::LoadOptions cpu, gpu;
  gpu.device = c10::Device(c10::kCUDA, 0);
  auto on_cpu = edgerazor::io::load_pretrained(edgerazor_test::kStories, cpu);
  auto on_gpu = edgerazor::io::load_pretrained(edgerazor_test::kStories, gpu);
  at::NoGradGuard no_grad;
  const at::Tensor ids = at::arange(1, 200, at::kLong).remainder(500).add(3).view({1, -1});
  const at::Tensor a = on_cpu->forward(ids).logits;
  const at::Tensor b = on_gpu->forward(ids.to(gpu.device)).logits.cpu();
  EXPECT_LT((a - b).abs().max().item<double>(), 2e-3);
}

TEST(Gpu, Bf16AutocastStepGivesFiniteGradients) {
  SKIP_WITHOUT_GPU();
  edgerazor::io::LoadOptions gpu;
  gpu.device = c10::Device(c10::kCUDA, 0);
  auto model = edgerazor::io::load_pretrained(edgerazor_test::kStories, gpu);
  model->train();
  const at::Tensor ids = at::arange(0, 128, at::kLong).remainder(500).add(3).view({2, -1}).to(gpu.device);
  at::Tensor loss;
  {
    edgerazor::train::AutocastScope autocast(edgerazor::train::Precision::bf16, /*cuda=*/true);
    const at::Tensor logits = model->forward(ids).logits;
    EXPECT_EQ(logits.scalar_type(), at::kBFloat16);
    loss = at::cross_entropy_loss(logits.slice(1, 0, -1).reshape({-1, logits.size(-1)}).to(at::kFloat),
                                  ids.slice(1, 1).reshape({-1}));
  }
  loss.backward();
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  for (const auto& p : model->parameters())
    if (p.grad().defined()) EXPECT_TRUE(p.grad().isfinite().all().item<bool>());
}

TEST(Gpu, BatchesArriveThroughPinnedMemory) {
  SKIP_WITHOUT_GPU();
  edgerazor::data::Batch batch;
  batch.batch_size = 2;
  batch.seq_len = 3;
  batch.input_ids = {1, 2, 3, 4, 5, 6};
  batch.labels = {2, 3, -100, 5, 6, -100};
  batch.attention_mask = {1, 1, 1, 1, 1, 1};
  const auto out = edgerazor::train::to_tensors(batch, c10::Device(c10::kCUDA, 0));
  EXPECT_TRUE(out.input_ids.is_cuda());
  EXPECT_TRUE(at::equal(out.labels.cpu(), at::tensor(batch.labels, at::kLong).view({2, 3})));
}

TEST(Gpu, MemoryStatisticsFollowTheAllocator) {
  SKIP_WITHOUT_GPU();
  rt::reset_gpu_peak(0);
  const auto before = rt::gpu_memory(0);
  ASSERT_TRUE(before.valid);
  {
    const at::Tensor big = at::empty({64 << 20}, at::TensorOptions().dtype(at::kByte).device(at::kCUDA, 0));
    const auto during = rt::gpu_memory(0);
    EXPECT_GE(during.allocated_bytes - before.allocated_bytes, 64 << 20);
    EXPECT_GE(during.reserved_bytes, during.allocated_bytes);
  }
  EXPECT_GE(rt::gpu_memory(0).peak_allocated_bytes - before.allocated_bytes, 64 << 20);
}

}  // namespace
