/* Tests of wc_words(); exit status 0 when they all pass. */
#include <stdio.h>

#include "../words.h"

static int fails;

static void expect(const char *s, size_t want)
{
	size_t got = wc_words(s);
	if (got != want) {
		printf("FAIL: wc_words(%s%s%s) = %zu, want %zu\n", s ? "\"" : "", s ? s : "NULL",
		       s ? "\"" : "", got, want);
		fails++;
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0); /* keep the output if a test crashes */
	expect("hello world", 2);
	expect("one", 1);
	expect("", 0);
	expect("  many   spaces\tand\ttabs\n", 4);
	expect("carriage\rreturn", 2);
	expect(NULL, 0);
	if (!fails)
		puts("all wc_words tests pass");
	return fails != 0;
}
