#include "formats/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace jetmoe {

namespace {
std::atomic<unsigned> temp_counter{0};
}

AtomicFileWriter::AtomicFileWriter(const std::string& path) : path_(path) {
  // O_EXCL with a name unique to this process and call; retry if a stale file is in the way.
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    temp_path_ = str_cat(path, ".tmp-", ::getpid(), "-", temp_counter++);
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) fail(path, ": cannot create temporary file ", temp_path_, ": ", std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

void AtomicFileWriter::fail_io(const char* action, int err) {
  ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
  fail(path_, ": cannot ", action, ": ", std::strerror(err));
}

void AtomicFileWriter::write(const void* data, size_t size) {
  JM_CHECK(fd_ >= 0, "write after commit");
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, bytes, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_io("write", errno);
    }
    bytes += n;
    size -= size_t(n);
  }
}

void AtomicFileWriter::commit() {
  JM_CHECK(fd_ >= 0, "commit twice");
  if (::fsync(fd_) != 0) fail_io("flush to disk", errno);
  if (::close(fd_) != 0) {
    const int err = errno;
    fd_ = -1;
    ::unlink(temp_path_.c_str());
    fail(path_, ": cannot close: ", std::strerror(err));
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    fail(path_, ": cannot rename ", temp_path_, " into place: ", std::strerror(err));
  }
}

}  // namespace jetmoe
