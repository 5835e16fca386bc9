# tests/cudaemu/cudaemu.mk - the CUDA device emulator, included by the top
# Makefile (after BUILD and SANITIZE are set).
#
#   $(CUDAEMU_LIB)   build/lib/libtessera_cudaemu.so: every kernels/ and codec/ .cu built
#                    with g++ against tests/cudaemu/cudaemu.h, plus the runtime
#   $(BUILD)/tests/test_cudaemu   the emulator's self-tests (harness binary)
#   CUDAEMU_TARGETS  both, for `tests`
#
# Objects go under $(BUILD)/obj/cudaemu/.  SANITIZE=1 builds everything with
# ASan+UBSan (the runtime then switches fibers with annotated ucontext).

CUDAEMU_DIR := tests/cudaemu
CUDAEMU_OBJ := $(BUILD)/obj/cudaemu
CUDAEMU_CXX ?= g++
CUDAEMU_CXXFLAGS := -O2 -g -fPIC -std=c++17 -ffp-contract=off -Wall -Wextra -Werror \
  -Wno-unused-parameter -I. -I/usr/include/openblas
CUDAEMU_LDFLAGS :=
ifeq ($(SANITIZE),1)
CUDAEMU_CXXFLAGS := $(filter-out -O2,$(CUDAEMU_CXXFLAGS)) -O1 -fsanitize=address,undefined \
  -fno-omit-frame-pointer -fno-sanitize-recover=undefined -fsanitize-sections=cudaemu_shared
CUDAEMU_LDFLAGS += -fsanitize=address,undefined
endif
# How a .cu file (or a test with kernels) is compiled under the emulator:
# CUDA's lax aliasing of vector loads, and -Wshadow as the C code has.
CUDAEMU_KFLAGS := -x c++ -DCUDAEMU -include $(CUDAEMU_DIR)/cudaemu.h -I$(CUDAEMU_DIR)/include \
  -fno-strict-aliasing -Wshadow
CUDAEMU_LIBS := -lopenblas -lm -lpthread

CUDAEMU_LIB := $(BUILD)/lib/libtessera_cudaemu.so
CUDAEMU_KERNEL_SRCS := $(wildcard kernels/*.cu codec/*.cu)
CUDAEMU_KERNEL_OBJS := $(CUDAEMU_KERNEL_SRCS:%.cu=$(CUDAEMU_OBJ)/%.o)
CUDAEMU_RT_OBJ := $(CUDAEMU_OBJ)/cudaemu.o
CUDAEMU_TEST := $(BUILD)/tests/test_cudaemu
CUDAEMU_TARGETS := $(CUDAEMU_LIB) $(CUDAEMU_TEST)
# rebuilt when this file (the flags) changes
CUDAEMU_DEPS := $(CUDAEMU_DIR)/cudaemu.mk $(FLAGS_STAMP)

$(CUDAEMU_RT_OBJ): $(CUDAEMU_DIR)/cudaemu.cc $(CUDAEMU_DEPS)
	@mkdir -p $(dir $@)
	$(CUDAEMU_CXX) $(CUDAEMU_CXXFLAGS) -MMD -MP -c $< -o $@

$(CUDAEMU_KERNEL_OBJS): $(CUDAEMU_OBJ)/%.o: %.cu $(CUDAEMU_DEPS)
	@mkdir -p $(dir $@)
	$(CUDAEMU_CXX) $(CUDAEMU_CXXFLAGS) $(CUDAEMU_KFLAGS) -MMD -MP -c $< -o $@

$(CUDAEMU_OBJ)/test_cudaemu.o: $(CUDAEMU_DIR)/test_cudaemu.cc $(CUDAEMU_DEPS)
	@mkdir -p $(dir $@)
	$(CUDAEMU_CXX) $(CUDAEMU_CXXFLAGS) $(CUDAEMU_KFLAGS) -MMD -MP -c $< -o $@

$(CUDAEMU_LIB): $(CUDAEMU_RT_OBJ) $(CUDAEMU_KERNEL_OBJS)
	@mkdir -p $(dir $@)
	$(CUDAEMU_CXX) -shared $(CUDAEMU_LDFLAGS) -o $@ $^ $(CUDAEMU_LIBS)

$(CUDAEMU_TEST): $(CUDAEMU_OBJ)/test_cudaemu.o $(CUDAEMU_RT_OBJ) $(BUILD)/obj/tests/harness.o
	@mkdir -p $(dir $@)
	$(CUDAEMU_CXX) $(CUDAEMU_LDFLAGS) -o $@ $^ $(CUDAEMU_LIBS)
