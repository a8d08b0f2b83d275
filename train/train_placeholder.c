/* train_placeholder.c — keeps distill_train non-empty until train/ sources land; removed then. */
typedef int distill_train_placeholder;
