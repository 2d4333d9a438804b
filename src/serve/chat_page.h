// GET /: a small self-contained chat page (HTML, CSS and JavaScript in one string; no
// build step, nothing fetched from elsewhere) that streams replies from /v1/chat/completions.
#pragma once

#include <string>

namespace jetmoe::serve {

const std::string& chat_page_html();

}  // namespace jetmoe::serve
