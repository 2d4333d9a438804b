#include "formats/tokenizer/bpe.h"

#include <algorithm>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "formats/tokenizer/utf8.h"

namespace jetmoe::tokenizer_detail {
namespace {

// A stretch of the word; merging grows the left symbol and empties the right one.
struct Symbol {
  uint32_t begin;
  uint32_t end;
  int32_t id;    // piece id of word[begin, end), -1 if it is no piece
  int32_t prev;  // neighbours in the linked list, -1 at the ends
  int32_t next;
  bool frozen;   // SentencePiece user-defined symbol: never merged
  uint32_t size() const { return end - begin; }
};

struct Candidate {
  double priority;  // smaller merges first: the rank, or minus the score
  int32_t left;     // symbol indices; equal priorities merge leftmost first
  int32_t right;
  uint32_t size;    // bytes of the merged span when queued; differs once either side changed
  int32_t result;
};

struct MergesLater {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.priority > b.priority || (a.priority == b.priority && a.left > b.left);
  }
};

class WordEncoder {
 public:
  WordEncoder(const TokenizerModel& model, std::string_view word) : model_(model), word_(word) {}

  void run(std::vector<int32_t>& out) {
    split_into_characters();
    for (size_t i = 1; i < symbols_.size(); ++i) queue_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    merge_all();
    for (int32_t i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[i].next) {
      const Symbol& s = symbols_[i];
      emit(word_.substr(s.begin, s.size()), s.id, out);
    }
  }

 private:
  int32_t lookup(std::string_view piece) const { return model_.find(piece).value_or(-1); }

  // Characters, except that SentencePiece user-defined symbols are taken whole (longest match).
  void split_into_characters() {
    symbols_.reserve(word_.size());
    for (size_t pos = 0; pos < word_.size();) {
      size_t length = 0;
      bool frozen = false;
      for (const std::string& symbol : model_.frozen_symbols) {
        if (symbol.size() > length && word_.substr(pos).starts_with(symbol)) {
          length = symbol.size();
          frozen = true;
        }
      }
      if (!frozen) length = std::max<size_t>(1, utf8::valid_char_length(word_, pos));
      const auto index = static_cast<int32_t>(symbols_.size());
      symbols_.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(pos + length),
                          lookup(word_.substr(pos, length)), index - 1, -1, frozen});
      if (index > 0) symbols_[index - 1].next = index;
      pos += length;
    }
  }

  void queue_pair(int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols_[left];
    const Symbol& r = symbols_[right];
    if (l.frozen || r.frozen) return;
    const uint32_t size = l.size() + r.size();
    if (model_.merge_order == MergeOrder::kByRank) {
      if (l.id < 0 || r.id < 0) return;
      const auto it = model_.merges.find((uint64_t{static_cast<uint32_t>(l.id)} << 32) | static_cast<uint32_t>(r.id));
      if (it == model_.merges.end()) return;
      queue_.push({static_cast<double>(it->second.rank), left, right, size, it->second.result});
      return;
    }
    const std::string_view merged = word_.substr(l.begin, size);
    const int32_t id = lookup(merged);
    if (id < 0) return;
    const PieceKind kind = model_.kinds[id];
    if (kind != PieceKind::kNormal && kind != PieceKind::kUserDefined && kind != PieceKind::kUnused) return;
    queue_.push({-static_cast<double>(model_.scores[id]), left, right, size, id});
    // SentencePiece never outputs an unused piece: it splits it back into the pair it came from.
    if (kind == PieceKind::kUnused) {
      unused_parts_[merged] = {word_.substr(l.begin, l.size()), word_.substr(r.begin, r.size())};
    }
  }

  void merge_all() {
    while (!queue_.empty()) {
      const Candidate top = queue_.top();
      queue_.pop();
      Symbol& l = symbols_[top.left];
      Symbol& r = symbols_[top.right];
      if (l.size() == 0 || r.size() == 0 || l.size() + r.size() != top.size) continue;  // stale
      l.end = r.end;
      l.id = top.result;
      l.next = r.next;
      if (r.next >= 0) symbols_[r.next].prev = top.left;
      r.end = r.begin;
      queue_pair(l.prev, top.left);
      queue_pair(top.left, l.next);
    }
  }

  void emit(std::string_view piece, int32_t id, std::vector<int32_t>& out) {
    if (id >= 0 && model_.kinds[id] == PieceKind::kUnused) {
      if (const auto it = unused_parts_.find(piece); it != unused_parts_.end()) {
        emit(it->second.first, lookup(it->second.first), out);
        emit(it->second.second, lookup(it->second.second), out);
        return;
      }
    }
    if (id >= 0) {
      out.push_back(id);
      last_was_unknown_ = false;
      return;
    }
    emit_unknown(piece, out);
  }

  void emit_unknown(std::string_view piece, std::vector<int32_t>& out) {
    if (model_.byte_fallback) {
      bool all_bytes_known = true;
      for (const char c : piece) all_bytes_known = all_bytes_known && model_.byte_ids[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes_known) {
        for (const char c : piece) out.push_back(model_.byte_ids[static_cast<uint8_t>(c)]);
        last_was_unknown_ = false;
        return;
      }
    }
    if (model_.unk_id < 0) {
      throw Error(str_cat(model_.source, ": cannot encode '", piece,
                          "': it is not in the vocabulary and there is neither byte fallback nor an unknown token"));
    }
    if (!(model_.fuse_unk && last_was_unknown_)) out.push_back(model_.unk_id);
    last_was_unknown_ = true;
  }

  const TokenizerModel& model_;
  std::string_view word_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Candidate, std::vector<Candidate>, MergesLater> queue_;
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> unused_parts_;
  bool last_was_unknown_ = false;
};

}  // namespace

void bpe_encode_word(const TokenizerModel& model, std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) return;
  if (word.size() >= (size_t{1} << 32)) fail(model.source, ": cannot encode a text of 4 GiB or more at once");
  if (model.ignore_merges) {
    if (const auto id = model.find(word)) {
      out.push_back(*id);
      return;
    }
  }
  WordEncoder(model, word).run(out);
}

}  // namespace jetmoe::tokenizer_detail
