// ModelHolder: where a device keeps the global model it holds between
// rounds. DeviceSession reads it and hands it each newly received version,
// but owns no model memory itself: a real agent keeps one copy in memory
// and on disk (model.weights in its state directory), and the fleet engine
// shares one copy of each version among every simulated device holding it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "shoal/base/result.h"
#include "shoal/crypto/hash.h"
#include "shoal/weights/weights.h"

namespace shoal::client {

class ModelHolder {
 public:
  virtual ~ModelHolder() = default;
  // The model held, or null when there is none.
  virtual const weights::Weights* model() const = 0;
  // BLAKE2b-256 of the held model's values (updater::values_hash), computed
  // once per model. REQUIRES: model() is not null.
  virtual const crypto::Blake2b256Digest& model_hash() = 0;
  // Holds `model` from now on, in place of any earlier one.
  virtual void adopt(weights::Weights model) = 0;
  // Holds nothing from now on (the copy held proved wrong).
  virtual void forget() = 0;
};

// A holder that keeps the model in memory only: the base of the agent's
// file-backed holder, and what unit tests use.
class MemoryModelHolder : public ModelHolder {
 public:
  const weights::Weights* model() const override { return model_ ? &*model_ : nullptr; }
  const crypto::Blake2b256Digest& model_hash() override;
  void adopt(weights::Weights model) override;
  void forget() override;

 private:
  std::optional<weights::Weights> model_;
  std::optional<crypto::Blake2b256Digest> hash_;
};

// The agent's holder: in memory, and on disk in `file` (model.weights in
// its state directory). An adopted model is written by flush(), which the
// agent calls once a task's answer is on its way, so the durable write is
// off the round's path. An empty `file` keeps nothing on disk.
class FileModelHolder final : public MemoryModelHolder {
 public:
  explicit FileModelHolder(std::filesystem::path file) : file_(std::move(file)) {}
  // Holds the model saved in `file`, if there is one of `layout`. Returns
  // what happened, for the log (nothing when there is no file).
  std::optional<std::string> load(const weights::Layout& layout);
  void adopt(weights::Weights model) override;
  // Writes the adopted model if it is not on disk yet (atomically).
  Status flush();

 private:
  std::filesystem::path file_;
  bool unsaved_ = false;
};

}  // namespace shoal::client
