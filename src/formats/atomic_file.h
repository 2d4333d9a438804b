// Writes a file so that readers see either the old file or the complete new one: bytes go to
// PATH.tmp-<unique> and are renamed over PATH by commit(). Without commit() (an exception on
// the way) the temporary file is removed.
#pragma once

#include <cstddef>
#include <string>

namespace jetmoe {

class AtomicFileWriter {
 public:
  // Throws an Error naming `path` if the temporary file cannot be created.
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  // Flushes to disk and renames into place.
  void commit();

 private:
  [[noreturn]] void fail_io(const char* action, int err);

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
};

}  // namespace jetmoe
