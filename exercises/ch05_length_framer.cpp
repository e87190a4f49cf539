// ch05_length_framer.cpp — exercise 5.1, yours to write (see
// ch05_length_framer.hpp for the wire format and exercises/README.md for the
// hints). Run its check with
//   ctest --preset linux -L exercise -R ch05
#include "ch05_length_framer.hpp"

#include <stdexcept>

namespace iocp_chat::exercises {

void LengthFramer::feed(std::string_view bytes) { pending_.append(bytes); }

LengthFramer::Status LengthFramer::next(std::string& body) {
  // Exercise 5.1: look at the header first (two bytes, big-endian: no cast
  // to a struct), check the length, and take out a body only when all of it
  // is here.
  (void)body;
  (void)max_body_;
  throw std::logic_error(
      "exercise 5.1 is not solved yet: write LengthFramer::next in exercises/ch05_length_framer.cpp");
}

}  // namespace iocp_chat::exercises
