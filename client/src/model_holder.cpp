#include "shoal/client/model_holder.h"

#include "shoal/updater/delta_codec.h"
#include "shoal/weights/weights_file.h"

namespace shoal::client {

const crypto::Blake2b256Digest& MemoryModelHolder::model_hash() {
  if (!hash_) hash_ = updater::values_hash(*model_);
  return *hash_;
}

void MemoryModelHolder::adopt(weights::Weights model) {
  model_ = std::move(model);
  hash_.reset();
}

void MemoryModelHolder::forget() {
  model_.reset();
  hash_.reset();
}

std::optional<std::string> FileModelHolder::load(const weights::Layout& layout) {
  if (file_.empty() || !std::filesystem::exists(file_)) return std::nullopt;
  auto saved = weights::read_weights_file(file_);
  if (saved && saved->layout().hash() == layout.hash()) {
    MemoryModelHolder::adopt(std::move(saved).value());
    return "holding model version " + std::to_string(model()->version()) + " from " + file_.string();
  }
  return "ignoring " + file_.string() + ": " + (saved ? "its layout is not this model's" : saved.error().message) +
         "; the aggregator will send its model";
}

void FileModelHolder::adopt(weights::Weights model) {
  MemoryModelHolder::adopt(std::move(model));
  unsaved_ = !file_.empty();
}

Status FileModelHolder::flush() {
  if (!unsaved_) return ok_status();
  unsaved_ = false;
  if (!model()) return ok_status();
  return weights::write_weights_file(file_, *model());
}

}  // namespace shoal::client
