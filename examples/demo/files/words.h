#ifndef WORDS_H
#define WORDS_H

#include <stddef.h>

/* The number of words in s: maximal runs of characters that are not white
 * space. s may be NULL (no words). */
size_t wc_words(const char *s);

#endif
