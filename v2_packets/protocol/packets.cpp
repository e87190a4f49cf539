// packets.cpp — being written (see packets.hpp).
#include "packets.hpp"
