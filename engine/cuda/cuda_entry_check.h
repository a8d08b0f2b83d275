/*
 * cuda_entry_check.h — included at the END of every .cu file of the CUDA backend that defines
 * entry points (cu_<name>, declared in cuda_internal.h from engine/kernels.def).
 *
 * Why: in C, a definition whose signature differs from its prototype is a compile error; in C++ it
 * is a new overload, and the mistake would surface only as an undefined reference at link time
 * (or not at all, if someone also kept the old one). Here, for every kernel of the list,
 * decltype(&cu_<name>) must be exactly the pointer type of the list's signature: an overload makes
 * the name ambiguous and a different type fails the assertion, both at compile time, in the file
 * that holds the wrong definition.
 *
 * No include guard: each file includes it once, after its definitions.
 */
#include <type_traits>

#define DISTILL_KERNEL(ret, name, params)                                                      \
    static_assert(std::is_same<decltype(&cu_##name), ret(*) params>::value,                    \
                  "cu_" #name " does not have the signature engine/kernels.def gives it");
#include "engine/kernels.def"
