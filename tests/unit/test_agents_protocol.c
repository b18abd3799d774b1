/* test_agents_protocol.c — the model's side of the agent protocol: turns,
 * plans, choices and verdicts parsed from replies with prose, fences and
 * blanks around them; every kind of malformed reply gives TK_EFORMAT and a
 * repair message that names the problem; the JSON Schemas convert to
 * grammars that admit the valid replies and refuse invalid ones; the
 * protocol prompts list exactly the allowed tools. */
#include "testutil.h"

#include "agents/protocol.h"
#include "core/buf.h"
#include "core/err.h"
#include "llm/grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOLBIT(t) (1u << AGENT_TOOL_##t)

/* ---- turns ---------------------------------------------------------------- */

static void parse_ok(const char *text, unsigned allowed, enum agent_tool tool,
		     struct agent_turn *t)
{
	char *repair = (char *)"unset";
	int rc = agent_parse_turn(text, strlen(text), allowed, t, &repair);
	if (rc)
		fail_msg("turn refused (%d): %s\nreply: %s\nrepair: %s", rc, tk_err_detail(), text,
			 repair ? repair : "(null)");
	assert_null(repair);
	assert_int_equal(t->tool, tool);
	assert_non_null(t->thought);
	assert_true(json_is_object(t->args));
}

static void test_turn_valid(void **state)
{
	(void)state;
	struct agent_turn t;
	parse_ok("{\"thought\": \"look around\", \"tool\": \"list_files\", \"args\": {}}",
		 AGENT_TOOLS_ALL, AGENT_TOOL_LIST_FILES, &t);
	assert_string_equal(t.thought, "look around");
	assert_int_equal(json_object_size(t.args), 0);
	agent_turn_clear(&t);

	/* prose before and after, a ```json fence, CRLF and tabs */
	parse_ok("Sure! I'll read the file first.\r\n\r\n```json\r\n{\t\"thought\": \"read it\",\r\n"
		 "  \"tool\": \"read_file\", \"args\": {\"path\": \"src/main.c\"}}\r\n```\r\nDone.",
		 AGENT_TOOLS_ALL, AGENT_TOOL_READ_FILE, &t);
	assert_string_equal(json_string_value(json_object_get(t.args, "path")), "src/main.c");
	agent_turn_clear(&t);

	/* braces in the prose before the object and in its strings */
	parse_ok("Using {braces} and {'x': 1} in prose. {\"tool\": \"write_file\", \"args\": "
		 "{\"path\": \"a.c\", \"content\": \"int main(void) { return \\\"}\\\"[0]; }\\n\"}}"
		 " and a second {\"tool\": \"run\"} is ignored",
		 AGENT_TOOLS_ALL, AGENT_TOOL_WRITE_FILE, &t);
	assert_string_equal(t.thought, ""); /* absent thought */
	assert_string_equal(json_string_value(json_object_get(t.args, "content")),
			    "int main(void) { return \"}\"[0]; }\n");
	agent_turn_clear(&t);

	parse_ok("{\"thought\": \"\", \"tool\": \"edit_file\", \"args\": {\"path\": \"./lib/x.py\", "
		 "\"search\": \"return 1\", \"replace\": \"\"}}",
		 AGENT_TOOLS_ALL, AGENT_TOOL_EDIT_FILE, &t);
	/* leading "./" is normalised away */
	assert_string_equal(json_string_value(json_object_get(t.args, "path")), "lib/x.py");
	assert_string_equal(json_string_value(json_object_get(t.args, "replace")), "");
	agent_turn_clear(&t);

	parse_ok("{\"tool\": \"run\", \"args\": {\"command\": \"make test && ./t\"}}",
		 TOOLBIT(RUN), AGENT_TOOL_RUN, &t);
	agent_turn_clear(&t);

	parse_ok("{\"tool\": \"finish\", \"args\": {\"summary\": \"wrote tests\", "
		 "\"test_command\": \"python3 -m unittest\"}}",
		 TOOLBIT(FINISH), AGENT_TOOL_FINISH, &t);
	assert_string_equal(json_string_value(json_object_get(t.args, "test_command")),
			    "python3 -m unittest");
	agent_turn_clear(&t);

	/* list_files: ".", "dir/" normalised; unicode paths are fine */
	parse_ok("{\"tool\": \"list_files\", \"args\": {\"path\": \".\"}}", AGENT_TOOLS_ALL,
		 AGENT_TOOL_LIST_FILES, &t);
	assert_string_equal(json_string_value(json_object_get(t.args, "path")), "");
	agent_turn_clear(&t);
	parse_ok("{\"tool\": \"list_files\", \"args\": {\"path\": \"src/\"}}", AGENT_TOOLS_ALL,
		 AGENT_TOOL_LIST_FILES, &t);
	assert_string_equal(json_string_value(json_object_get(t.args, "path")), "src");
	agent_turn_clear(&t);
	parse_ok("{\"tool\": \"read_file\", \"args\": {\"path\": \"d\\u00e9j\\u00e0/.hidden\"}}",
		 AGENT_TOOLS_ALL, AGENT_TOOL_READ_FILE, &t);
	assert_string_equal(json_string_value(json_object_get(t.args, "path")),
			    "d\xc3\xa9j\xc3\xa0/.hidden");
	agent_turn_clear(&t);
	agent_turn_clear(NULL);

	/* a reply that is not NUL-terminated: only len bytes count */
	const char text[] = "{\"tool\": \"finish\", \"args\": {\"summary\": \"ok\"}}GARBAGE";
	char *repair;
	assert_int_equal(agent_parse_turn(text, sizeof text - 1 - 7, AGENT_TOOLS_ALL, &t, &repair),
			 0);
	agent_turn_clear(&t);
}

struct bad_turn {
	const char *text;
	unsigned allowed;
	const char *problem; /* must appear in the repair message */
};

static void check_bad_turns(const struct bad_turn *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct agent_turn t;
		memset(&t, 0x5a, sizeof t);
		char *repair = NULL;
		int rc = agent_parse_turn(cases[i].text, strlen(cases[i].text), cases[i].allowed, &t,
					  &repair);
		if (rc != TK_EFORMAT || !repair || !strstr(repair, cases[i].problem))
			fail_msg("case %zu: %s\nrc %d, repair: %s\nwant: %s", i, cases[i].text, rc,
				 repair ? repair : "(null)", cases[i].problem);
		/* outputs zeroed; the message is for a model and restates the shape */
		assert_null(t.thought);
		assert_null(t.args);
		assert_non_null(strstr(repair, "Your reply was not valid: "));
		assert_non_null(strstr(repair, "Answer with one JSON object and nothing else: "
					       "{\"thought\""));
		/* the detail names the problem too (for the logs) */
		assert_non_null(strstr(tk_err_detail(), "agent turn: "));
		free(repair);
	}
}

static void test_turn_malformed(void **state)
{
	(void)state;
	static const struct bad_turn cases[] = {
		{ "", AGENT_TOOLS_ALL, "the reply is empty" },
		{ " \n\t ", AGENT_TOOLS_ALL, "the reply is empty" },
		{ "I think we should read main.c.", AGENT_TOOLS_ALL, "it contains no JSON object" },
		{ "{'tool': 'run'}", AGENT_TOOLS_ALL, "double quotes, not single quotes" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"a.c\"}", AGENT_TOOLS_ALL,
		  "not complete: the reply ends before its closing brace" },
		{ "```json\n{\"tool\": \"read_file\", \"args\": {\"path\": \"a.c\"}\n```", AGENT_TOOLS_ALL,
		  "not complete" },
		{ "{ ", AGENT_TOOLS_ALL, "ends after its opening brace" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"a.c\",}}", AGENT_TOOLS_ALL,
		  "the JSON object is malformed (line 1" },
		{ "{\"tool\": \"read_file\" \"args\": {}}", AGENT_TOOLS_ALL, "is malformed" },
		{ "{\"tool\": \"run\", \"tool\": \"finish\", \"args\": {}}", AGENT_TOOLS_ALL,
		  "is malformed (line 1 column" }, /* duplicate key */
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"a\\u0000b\"}}", AGENT_TOOLS_ALL,
		  "is malformed" }, /* NUL */
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"\xff\"}}", AGENT_TOOLS_ALL,
		  "is malformed" }, /* bad UTF-8 */
		{ "{\"thought\": \"x\", \"args\": {}}", AGENT_TOOLS_ALL, "the field \"tool\" is missing" },
		{ "{\"tool\": 3, \"args\": {}}", AGENT_TOOLS_ALL, "\"tool\" must be a string, not an integer" },
		{ "{\"tool\": \"\", \"args\": {}}", AGENT_TOOLS_ALL, "\"tool\" is empty" },
		{ "{\"tool\": \"delete_file\", \"args\": {}}", AGENT_TOOLS_ALL,
		  "\"delete_file\" is not a tool; your tools are: list_files, read_file, write_file, "
		  "edit_file, run, finish" },
		{ "{\"tool\": \"run\", \"args\": {\"command\": \"ls\"}}",
		  AGENT_TOOLS_ALL & ~TOOLBIT(RUN),
		  "you may not use run; your tools are: list_files, read_file, write_file, edit_file, "
		  "finish" },
		{ "{\"thought\": 1, \"tool\": \"finish\", \"args\": {\"summary\": \"s\"}}", AGENT_TOOLS_ALL,
		  "\"thought\" must be a string, not an integer" },
		{ "{\"tool\": \"finish\", \"args\": {\"summary\": \"s\"}, \"confidence\": 0.9}",
		  AGENT_TOOLS_ALL, "unknown field \"confidence\" (the fields are: \"thought\", \"tool\", "
		  "\"args\")" },
		{ "{\"tool\": \"finish\"}", AGENT_TOOLS_ALL, "the field \"args\" is missing" },
		{ "{\"tool\": \"finish\", \"args\": \"done\"}", AGENT_TOOLS_ALL,
		  "\"args\" must be an object, not a string" },
		{ "{\"tool\": \"finish\", \"args\": null}", AGENT_TOOLS_ALL, "not null" },
		{ "{\"tool\": \"read_file\", \"args\": {\"file\": \"a.c\"}}", AGENT_TOOLS_ALL,
		  "unknown field \"file\" in the args of read_file (the fields are: \"path\")" },
		{ "{\"tool\": \"read_file\", \"args\": {}}", AGENT_TOOLS_ALL,
		  "the field \"args.path\" is missing" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": [\"a.c\"]}}", AGENT_TOOLS_ALL,
		  "\"args.path\" must be a string, not an array" },
		{ "{\"tool\": \"write_file\", \"args\": {\"path\": \"a.c\"}}", AGENT_TOOLS_ALL,
		  "the field \"args.content\" is missing" },
		{ "{\"tool\": \"write_file\", \"args\": {\"path\": \"a.c\", \"content\": 5}}",
		  AGENT_TOOLS_ALL, "\"args.content\" must be a string, not an integer" },
		{ "{\"tool\": \"edit_file\", \"args\": {\"path\": \"a.c\", \"search\": \"\", \"replace\": "
		  "\"x\"}}", AGENT_TOOLS_ALL, "\"args.search\" is empty" },
		{ "{\"tool\": \"edit_file\", \"args\": {\"path\": \"a.c\", \"search\": \"x\"}}",
		  AGENT_TOOLS_ALL, "the field \"args.replace\" is missing" },
		{ "{\"tool\": \"run\", \"args\": {\"command\": \"\"}}", AGENT_TOOLS_ALL,
		  "\"args.command\" is empty" },
		{ "{\"tool\": \"run\", \"args\": {\"cmd\": \"ls\"}}", AGENT_TOOLS_ALL,
		  "unknown field \"cmd\" in the args of run (the fields are: \"command\")" },
		{ "{\"tool\": \"finish\", \"args\": {}}", AGENT_TOOLS_ALL,
		  "the field \"args.summary\" is missing" },
		{ "{\"tool\": \"finish\", \"args\": {\"summary\": \"ok\", \"test_command\": \"\"}}",
		  AGENT_TOOLS_ALL, "\"args.test_command\" is empty" },
		{ "{\"tool\": \"finish\", \"args\": {\"summary\": \"ok\", \"test_command\": false}}",
		  AGENT_TOOLS_ALL, "\"args.test_command\" must be a string, not a boolean" },
	};
	check_bad_turns(cases, sizeof cases / sizeof cases[0]);

	/* an unknown tool's repair restates the shape, a known one's adds its args */
	char *repair;
	struct agent_turn t;
	const char *r1 = "{\"tool\": \"write_file\", \"args\": {\"path\": \"a\"}}";
	assert_int_equal(agent_parse_turn(r1, strlen(r1), AGENT_TOOLS_ALL, &t, &repair), TK_EFORMAT);
	assert_non_null(strstr(repair, "The args of write_file: {\"path\": \"<file>\", \"content\":"));
	free(repair);
	const char *r2 = "{\"tool\": \"run\", \"args\": {\"command\": \"ls\"}}";
	assert_int_equal(agent_parse_turn(r2, strlen(r2), TOOLBIT(FINISH), &t, &repair), TK_EFORMAT);
	assert_non_null(strstr(repair, "\"tool\": \"<one of: finish>\""));
	assert_null(strstr(repair, "The args of run"));
	free(repair);
}

static void test_turn_paths(void **state)
{
	(void)state;
	char longcomp[300];
	memset(longcomp, 'a', 256);
	longcomp[256] = '\0';
	char longpath[5000];
	size_t n = 0;
	while (n + 5 < 4100) {
		memcpy(longpath + n, "abcd/", 5);
		n += 5;
	}
	memcpy(longpath + n, "x.c", 4);
	char r_comp[600], r_long[5200];
	snprintf(r_comp, sizeof r_comp,
		 "{\"tool\": \"read_file\", \"args\": {\"path\": \"src/%s.c\"}}", longcomp);
	snprintf(r_long, sizeof r_long, "{\"tool\": \"read_file\", \"args\": {\"path\": \"%s\"}}",
		 longpath);
	const struct bad_turn cases[] = {
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"/etc/passwd\"}}", AGENT_TOOLS_ALL,
		  "\"args.path\" \"/etc/passwd\" is absolute" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"../secret\"}}", AGENT_TOOLS_ALL,
		  "contains \"..\": paths must stay inside the workspace" },
		{ "{\"tool\": \"write_file\", \"args\": {\"path\": \"src/../../x\", \"content\": \"\"}}",
		  AGENT_TOOLS_ALL, "contains \"..\"" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"a/..\"}}", AGENT_TOOLS_ALL,
		  "contains \"..\"" },
		{ "{\"tool\": \"list_files\", \"args\": {\"path\": \"..\"}}", AGENT_TOOLS_ALL,
		  "contains \"..\"" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"\"}}", AGENT_TOOLS_ALL,
		  "\"args.path\" is empty" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"./\"}}", AGENT_TOOLS_ALL,
		  "\"args.path\" is empty" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"src//a.c\"}}", AGENT_TOOLS_ALL,
		  "has an empty component" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"src/\"}}", AGENT_TOOLS_ALL,
		  "has an empty component" },
		{ "{\"tool\": \"list_files\", \"args\": {\"path\": \"src//\"}}", AGENT_TOOLS_ALL,
		  "has an empty component" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"src/./a.c\"}}", AGENT_TOOLS_ALL,
		  "contains a \".\" component" },
		{ "{\"tool\": \"read_file\", \"args\": {\"path\": \"a\\nb\"}}", AGENT_TOOLS_ALL,
		  "contains a control character" },
		{ "{\"tool\": \"edit_file\", \"args\": {\"path\": \"/a\", \"search\": \"x\", \"replace\": "
		  "\"y\"}}", AGENT_TOOLS_ALL, "is absolute" },
		{ r_comp, AGENT_TOOLS_ALL, "has a component longer than 255 bytes" },
		{ r_long, AGENT_TOOLS_ALL, "bytes long, more than 4096" },
	};
	check_bad_turns(cases, sizeof cases / sizeof cases[0]);
}

static void test_reply_cap(void **state)
{
	(void)state;
	size_t n = AGENT_REPLY_MAX + 1;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, ' ', n);
	const char *obj = "{\"tool\": \"finish\", \"args\": {\"summary\": \"ok\"}}";
	memcpy(big, obj, strlen(obj));
	struct agent_turn t;
	char *repair;
	assert_int_equal(agent_parse_turn(big, n, AGENT_TOOLS_ALL, &t, &repair), TK_EFORMAT);
	assert_non_null(strstr(repair, "more than the 1048576 accepted"));
	free(repair);
	/* exactly at the cap it is fine */
	assert_int_equal(agent_parse_turn(big, n - 1, AGENT_TOOLS_ALL, &t, &repair), 0);
	agent_turn_clear(&t);
	free(big);
}

/* ---- plans, choice, verdict ----------------------------------------------- */

static struct agent_team team;

static int team_setup(void **state)
{
	(void)state;
	return agent_team_default(&team);
}

static int team_teardown(void **state)
{
	(void)state;
	agent_team_free(&team);
	return 0;
}

static void test_plans(void **state)
{
	(void)state;
	const char *ok = "Here are two plans:\n```json\n{\"plans\": [{\"title\": \"direct\", \"steps\": ["
			 "{\"agent\": \"coder\", \"goal\": \"write sum.c\"}, {\"agent\": \"tester\", "
			 "\"goal\": \"test it\"}, {\"agent\": \"code-reviewer\", \"goal\": \"review\"}]},"
			 " {\"title\": \"tests first\", \"steps\": [{\"agent\": \"tester\", \"goal\": "
			 "\"tests\"}, {\"agent\": \"coder\", \"goal\": \"code\"}]}]}\n```";
	json_t *plans;
	char *repair;
	assert_int_equal(agent_parse_plans(ok, strlen(ok), &team, 2, &plans, &repair), 0);
	assert_null(repair);
	assert_int_equal(json_array_size(plans), 2);
	json_t *p0 = json_array_get(plans, 0);
	assert_string_equal(json_string_value(json_object_get(p0, "title")), "direct");
	assert_int_equal(json_array_size(json_object_get(p0, "steps")), 3);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(p0, "steps"), 2), "agent")),
			    "code-reviewer");
	json_decref(plans);

	const struct {
		const char *text;
		int32_t max;
		const char *problem;
	} bad[] = {
		{ "{\"plans\": []}", 2, "\"plans\" has 0 plans; give 1 to 2" },
		{ ok, 1, "\"plans\" has 2 plans; give exactly 1" },
		{ "{\"plan\": []}", 2, "unknown field \"plan\" (the fields are: \"plans\")" },
		{ "{}", 2, "the field \"plans\" is missing" },
		{ "{\"plans\": {\"title\": \"x\"}}", 2, "\"plans\" must be an array of plans, not an object" },
		{ "{\"plans\": [\"write it\"]}", 2, "\"plans[0]\" must be an object {\"title\", \"steps\"}, not a string" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": [{\"agent\": \"coder\", \"goal\": \"g\"}], "
		  "\"risk\": \"low\"}]}", 2, "unknown field \"risk\" in plans[0]" },
		{ "{\"plans\": [{\"steps\": [{\"agent\": \"coder\", \"goal\": \"g\"}]}]}", 2,
		  "the field \"plans[0].title\" is missing" },
		{ "{\"plans\": [{\"title\": \"\", \"steps\": [{\"agent\": \"coder\", \"goal\": \"g\"}]}]}", 2,
		  "\"plans[0].title\" is empty" },
		{ "{\"plans\": [{\"title\": \"t\"}]}", 2, "the field \"plans[0].steps\" is missing" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": []}]}", 2,
		  "\"plans[0].steps\" has 0 steps; give 1 to 16" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": \"code it\"}]}", 2,
		  "\"plans[0].steps\" must be an array, not a string" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": [{\"agent\": \"coder\", \"goal\": \"g\"}]}, "
		  "{\"title\": \"u\", \"steps\": [{\"agent\": \"wizard\", \"goal\": \"g\"}]}]}", 2,
		  "\"plans[1].steps[0].agent\" is \"wizard\", which is not an agent of the team; steps go "
		  "to one of: coder, tester, code-reviewer, debugger, documenter" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": [{\"agent\": \"planner-critic\", \"goal\": "
		  "\"g\"}]}]}", 2, "which makes plans and does not do steps" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": [{\"agent\": \"coder\"}]}]}", 2,
		  "the field \"plans[0].steps[0].goal\" is missing" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": [{\"agent\": \"coder\", \"goal\": 1}]}]}", 2,
		  "\"plans[0].steps[0].goal\" must be a string, not an integer" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": [[\"coder\", \"g\"]]}]}", 2,
		  "\"plans[0].steps[0]\" must be an object {\"agent\", \"goal\"}, not an array" },
		{ "{\"plans\": [{\"title\": \"t\", \"steps\": [{\"agent\": \"coder\", \"goal\": \"g\", "
		  "\"why\": \"x\"}]}]}", 2, "unknown field \"why\" in plans[0].steps[0]" },
		{ "plans: 1. write code 2. test", 2, "it contains no JSON object" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		plans = (json_t *)&team; /* not NULL: must be reset */
		int rc = agent_parse_plans(bad[i].text, strlen(bad[i].text), &team, bad[i].max,
					   &plans, &repair);
		if (rc != TK_EFORMAT || !repair || !strstr(repair, bad[i].problem))
			fail_msg("case %zu: rc %d repair %s\nwant %s", i, rc, repair ? repair : "(null)",
				 bad[i].problem);
		assert_null(plans);
		/* the shape lists the agents a step may name */
		assert_non_null(strstr(repair, "{\"agent\": \"<coder|tester|code-reviewer|debugger|"
					       "documenter>\""));
		free(repair);
	}
	/* 17 steps is too many */
	struct tk_buf b = TK_BUF_INIT(1 << 16);
	tk_buf_puts(&b, "{\"plans\": [{\"title\": \"long\", \"steps\": [");
	for (int i = 0; i < 17; i++)
		tk_buf_printf(&b, "%s{\"agent\": \"coder\", \"goal\": \"step %d\"}", i ? ", " : "", i);
	tk_buf_puts(&b, "]}]}");
	assert_int_equal(agent_parse_plans(b.data, b.len, &team, 3, &plans, &repair), TK_EFORMAT);
	assert_non_null(strstr(repair, "has 17 steps; give 1 to 16"));
	free(repair);
	tk_buf_free(&b);
}

static void test_choice(void **state)
{
	(void)state;
	int32_t c = -1;
	char *reason = NULL, *repair = NULL;
	const char *ok = "I pick the second.\n{\"choice\": 1, \"reason\": \"tests first\"}";
	assert_int_equal(agent_parse_choice(ok, strlen(ok), 3, &c, &reason, &repair), 0);
	assert_int_equal(c, 1);
	assert_string_equal(reason, "tests first");
	assert_null(repair);
	free(reason);
	const char *noreason = "{\"choice\": 0}";
	assert_int_equal(agent_parse_choice(noreason, strlen(noreason), 1, &c, &reason, &repair), 0);
	assert_int_equal(c, 0);
	assert_string_equal(reason, "");
	free(reason);

	static const struct {
		const char *text;
		int32_t n;
		const char *problem;
	} bad[] = {
		{ "{\"choice\": 2, \"reason\": \"r\"}", 2,
		  "\"choice\" is 2 but there are 2 plans, numbered from 0: choose 0 to 1" },
		{ "{\"choice\": 1, \"reason\": \"r\"}", 1,
		  "\"choice\" is 1 but there is 1 plan, numbered from 0: choose 0" },
		{ "{\"choice\": -1}", 3, "\"choice\" is -1" },
		{ "{\"choice\": 1.0}", 3, "\"choice\" must be a whole number" },
		{ "{\"choice\": 0.5}", 3, "\"choice\" must be a whole number" },
		{ "{\"choice\": \"1\"}", 3, "\"choice\" must be a number (the index of one plan), not a string" },
		{ "{\"choice\": [0, 1]}", 3, "not an array" },
		{ "{\"choice\": null}", 3, "not null" },
		{ "{\"reason\": \"r\"}", 3, "the field \"choice\" is missing" },
		{ "{\"choice\": 0, \"reason\": 5}", 3, "\"reason\" must be a string, not an integer" },
		{ "{\"choice\": 0, \"confidence\": 1}", 3, "unknown field \"confidence\"" },
		{ "The first plan is best.", 3, "it contains no JSON object" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		c = 77;
		reason = (char *)"x";
		int rc = agent_parse_choice(bad[i].text, strlen(bad[i].text), bad[i].n, &c, &reason,
					    &repair);
		if (rc != TK_EFORMAT || !repair || !strstr(repair, bad[i].problem))
			fail_msg("case %zu: rc %d repair %s\nwant %s", i, rc, repair ? repair : "(null)",
				 bad[i].problem);
		assert_int_equal(c, 0);
		assert_null(reason);
		assert_non_null(strstr(repair, "{\"reason\": \"<why one plan is the best>\", \"choice\": <the index"));
		free(repair);
	}
	/* a caller bug, not a model error */
	assert_int_equal(agent_parse_choice(ok, strlen(ok), 0, &c, &reason, &repair), TK_EINVAL);
	assert_null(repair);
	assert_null(reason);
}

static void test_verdict(void **state)
{
	(void)state;
	bool approve = false;
	json_t *issues = NULL;
	char *repair = NULL;
	const char *a = "```\n{\"verdict\": \"approve\", \"issues\": []}\n```";
	assert_int_equal(agent_parse_verdict(a, strlen(a), &approve, &issues, &repair), 0);
	assert_true(approve);
	assert_true(json_is_array(issues));
	assert_int_equal(json_array_size(issues), 0);
	json_decref(issues);
	const char *a2 = "{\"verdict\": \"approve\"}";
	assert_int_equal(agent_parse_verdict(a2, strlen(a2), &approve, &issues, &repair), 0);
	assert_true(approve);
	assert_int_equal(json_array_size(issues), 0);
	json_decref(issues);
	const char *a3 = "{\"verdict\": \"approve\", \"issues\": [\"nit: rename x\"]}";
	assert_int_equal(agent_parse_verdict(a3, strlen(a3), &approve, &issues, &repair), 0);
	assert_true(approve);
	assert_int_equal(json_array_size(issues), 1);
	json_decref(issues);
	const char *c = "Review:\n{\"verdict\": \"changes\", \"issues\": [\"sum.c:3: overflow on "
			"INT_MAX\", \"test_sum.c: never tests 0\"]}";
	assert_int_equal(agent_parse_verdict(c, strlen(c), &approve, &issues, &repair), 0);
	assert_false(approve);
	assert_int_equal(json_array_size(issues), 2);
	assert_string_equal(json_string_value(json_array_get(issues, 1)), "test_sum.c: never tests 0");
	json_decref(issues);

	static const struct {
		const char *text;
		const char *problem;
	} bad[] = {
		{ "{\"verdict\": \"changes\", \"issues\": []}",
		  "the verdict \"changes\" needs at least one issue" },
		{ "{\"verdict\": \"changes\"}", "the verdict \"changes\" needs at least one issue" },
		{ "{\"verdict\": \"reject\", \"issues\": [\"x\"]}",
		  "\"verdict\" is \"reject\"; it must be \"approve\" or \"changes\"" },
		{ "{\"verdict\": \"Approve\", \"issues\": []}", "\"verdict\" is \"Approve\"" },
		{ "{\"verdict\": true, \"issues\": []}", "\"verdict\" must be a string, not a boolean" },
		{ "{\"issues\": []}", "the field \"verdict\" is missing" },
		{ "{\"verdict\": \"changes\", \"issues\": \"overflow\"}",
		  "\"issues\" must be an array of strings, not a string" },
		{ "{\"verdict\": \"changes\", \"issues\": [{\"file\": \"a.c\"}]}",
		  "\"issues[0]\" must be a string, not an object" },
		{ "{\"verdict\": \"changes\", \"issues\": [\"ok\", \"\"]}", "\"issues[1]\" is empty" },
		{ "{\"verdict\": \"approve\", \"issues\": [], \"score\": 9}", "unknown field \"score\"" },
		{ "LGTM", "it contains no JSON object" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		issues = (json_t *)&approve;
		approve = true;
		int rc = agent_parse_verdict(bad[i].text, strlen(bad[i].text), &approve, &issues,
					     &repair);
		if (rc != TK_EFORMAT || !repair || !strstr(repair, bad[i].problem))
			fail_msg("case %zu: rc %d repair %s\nwant %s", i, rc, repair ? repair : "(null)",
				 bad[i].problem);
		assert_null(issues);
		assert_false(approve);
		assert_non_null(strstr(repair, "{\"issues\": [\"<file and line or function"));
		assert_non_null(strstr(repair, "\"verdict\": \"approve\" | \"changes\"}"));
		free(repair);
	}
	/* too many issues */
	struct tk_buf b = TK_BUF_INIT(1 << 16);
	tk_buf_puts(&b, "{\"verdict\": \"changes\", \"issues\": [");
	for (int i = 0; i < 65; i++)
		tk_buf_printf(&b, "%s\"issue %d\"", i ? ", " : "", i);
	tk_buf_puts(&b, "]}");
	assert_int_equal(agent_parse_verdict(b.data, b.len, &approve, &issues, &repair), TK_EFORMAT);
	assert_non_null(strstr(repair, "\"issues\" has 65 items; give at most 64"));
	free(repair);
	tk_buf_free(&b);
}

/* ---- schemas through the grammar converter -------------------------------- */

static struct llm_grammar *schema_grammar(const char *schema)
{
	json_error_t e;
	json_t *js = json_loads(schema, 0, &e);
	if (!js)
		fail_msg("schema is not JSON: %s\n%s", e.text, schema);
	struct tk_buf gb = TK_BUF_INIT(1 << 20);
	int rc = llm_schema_to_grammar(js, &gb);
	if (rc)
		fail_msg("schema refused by llm_schema_to_grammar: %s\n%s", tk_err_detail(), schema);
	json_decref(js);
	struct llm_grammar *g = llm_grammar_parse(gb.data, gb.len);
	if (!g)
		fail_msg("grammar refused: %s", tk_err_detail());
	tk_buf_free(&gb);
	return g;
}

struct sample {
	const char *text;
	bool admitted;
};

static void check_samples(const char *schema, const struct sample *s, size_t n)
{
	struct llm_grammar *g = schema_grammar(schema);
	for (size_t i = 0; i < n; i++) {
		int rc = llm_grammar_match(g, s[i].text, strlen(s[i].text));
		if ((rc == 0) != s[i].admitted)
			fail_msg("sample %zu %s by the grammar but should %sbe: %s", i,
				 rc == 0 ? "admitted" : "refused", s[i].admitted ? "" : "not ",
				 s[i].text);
	}
	llm_grammar_free(g);
}

static void test_schema_turn(void **state)
{
	(void)state;
	static const struct sample s[] = {
		{ "{\"thought\":\"look\",\"tool\":\"list_files\",\"args\":{}}", true },
		{ "{\"thought\": \"read\", \"tool\": \"read_file\", \"args\": {\"path\": \"a.c\"}}", true },
		{ "{\"thought\":\"w\",\"tool\":\"write_file\",\"args\":{\"path\":\"a.c\",\"content\":\"x\\n\"}}", true },
		{ "{\"thought\":\"e\",\"tool\":\"edit_file\",\"args\":{\"path\":\"a.c\",\"search\":\"a\",\"replace\":\"\"}}", true },
		{ "{\"thought\":\"r\",\"tool\":\"run\",\"args\":{\"command\":\"make\"}}", true },
		{ "{\"thought\":\"f\",\"tool\":\"finish\",\"args\":{\"summary\":\"done\",\"test_command\":\"make test\"}}", true },
		/* not admitted: unknown tool, missing args, extra field, wrong type, bad order */
		{ "{\"thought\":\"x\",\"tool\":\"delete_file\",\"args\":{}}", false },
		{ "{\"thought\":\"x\",\"tool\":\"run\"}", false },
		{ "{\"tool\":\"run\",\"args\":{}}", false },
		{ "{\"thought\":\"x\",\"tool\":\"run\",\"args\":{\"cmd\":\"ls\"}}", false },
		{ "{\"thought\":\"x\",\"tool\":\"run\",\"args\":{\"command\":1}}", false },
		{ "{\"thought\":\"x\",\"tool\":\"run\",\"args\":{},\"extra\":1}", false },
		{ "Sure: {\"thought\":\"x\",\"tool\":\"run\",\"args\":{}}", false },
	};
	check_samples(agent_schema_turn(), s, sizeof s / sizeof s[0]);

	/* every admitted sample with a valid tool call is accepted by the parser */
	for (size_t i = 0; i < 6; i++) {
		struct agent_turn t;
		char *repair;
		assert_int_equal(agent_parse_turn(s[i].text, strlen(s[i].text), AGENT_TOOLS_ALL, &t,
						  &repair), 0);
		agent_turn_clear(&t);
	}
}

static void test_schema_others(void **state)
{
	(void)state;
	static const struct sample plans[] = {
		{ "{\"plans\":[{\"title\":\"t\",\"steps\":[{\"agent\":\"coder\",\"goal\":\"g\"}]}]}", true },
		{ "{\"plans\": [{\"title\": \"a\", \"steps\": [{\"agent\": \"coder\", \"goal\": \"g\"}, "
		  "{\"agent\": \"tester\", \"goal\": \"h\"}]}, {\"title\": \"b\", \"steps\": "
		  "[{\"agent\": \"coder\", \"goal\": \"g\"}]}]}", true },
		{ "{\"plans\":[{\"steps\":[],\"title\":\"t\"}]}", false },
		{ "{\"plans\":[{\"title\":\"t\"}]}", false },
		{ "{\"plans\":[{\"title\":\"t\",\"steps\":[{\"agent\":\"coder\"}]}]}", false },
		{ "{\"plans\":\"x\"}", false },
	};
	check_samples(agent_schema_plans(), plans, sizeof plans / sizeof plans[0]);
	static const struct sample choice[] = {
		{ "{\"reason\":\"simpler\",\"choice\":1}", true },
		{ "{\"reason\": \"\", \"choice\": 0}", true },
		{ "{\"reason\":\"r\",\"choice\":1.5}", false },
		{ "{\"reason\":\"r\",\"choice\":\"1\"}", false },
		{ "{\"choice\":1}", false },
		{ "{\"choice\":1,\"reason\":\"r\"}", false }, /* reasoning comes first */
	};
	check_samples(agent_schema_choice(), choice, sizeof choice / sizeof choice[0]);
	static const struct sample verdict[] = {
		{ "{\"issues\":[],\"verdict\":\"approve\"}", true },
		{ "{\"issues\": [\"a.c:1: bug\", \"no test\"], \"verdict\": \"changes\"}", true },
		{ "{\"issues\":[],\"verdict\":\"reject\"}", false },
		{ "{\"issues\":[1],\"verdict\":\"changes\"}", false },
		{ "{\"verdict\":\"approve\"}", false },
		{ "{\"verdict\":\"approve\",\"issues\":[]}", false }, /* issues come first */
	};
	check_samples(agent_schema_verdict(), verdict, sizeof verdict / sizeof verdict[0]);

	/* admitted replies parse */
	json_t *pl;
	char *repair;
	assert_int_equal(agent_parse_plans(plans[1].text, strlen(plans[1].text), &team, 2, &pl,
					   &repair), 0);
	json_decref(pl);
	int32_t c;
	char *reason;
	assert_int_equal(agent_parse_choice(choice[0].text, strlen(choice[0].text), 2, &c, &reason,
					    &repair), 0);
	free(reason);
	bool ap;
	json_t *is;
	assert_int_equal(agent_parse_verdict(verdict[1].text, strlen(verdict[1].text), &ap, &is,
					     &repair), 0);
	json_decref(is);
}

/* ---- robustness: truncations, byte mutations, token soup ------------------ */

/* Runs every parser on text[0..n): each returns 0 or TK_EFORMAT, sets a
 * repair exactly when it fails, and zeroes its outputs on failure. */
static void parse_all(const char *text, size_t n)
{
	char *repair;
	struct agent_turn t;
	int rc = agent_parse_turn(text, n, AGENT_TOOLS_ALL, &t, &repair);
	assert_true(rc == 0 || rc == TK_EFORMAT);
	assert_true((rc == 0) == (repair == NULL));
	if (rc)
		assert_null(t.args);
	agent_turn_clear(&t);
	free(repair);

	json_t *plans;
	rc = agent_parse_plans(text, n, &team, 3, &plans, &repair);
	assert_true(rc == 0 || rc == TK_EFORMAT);
	assert_true((rc == 0) == (repair == NULL) && (rc == 0) == (plans != NULL));
	json_decref(plans);
	free(repair);

	int32_t c;
	char *reason;
	rc = agent_parse_choice(text, n, 3, &c, &reason, &repair);
	assert_true(rc == 0 || rc == TK_EFORMAT);
	assert_true((rc == 0) == (repair == NULL) && (rc == 0) == (reason != NULL));
	if (!rc)
		assert_true(c >= 0 && c < 3);
	free(reason);
	free(repair);

	bool ap;
	json_t *issues;
	rc = agent_parse_verdict(text, n, &ap, &issues, &repair);
	assert_true(rc == 0 || rc == TK_EFORMAT);
	assert_true((rc == 0) == (repair == NULL) && (rc == 0) == (issues != NULL));
	json_decref(issues);
	free(repair);
}

static void test_robustness(void **state)
{
	(void)state;
	static const char *const valid[] = {
		"ok: {\"thought\": \"t\", \"tool\": \"edit_file\", \"args\": {\"path\": \"a/b.c\", "
		"\"search\": \"x {\\\"\", \"replace\": \"y\"}}",
		"```json\n{\"plans\": [{\"title\": \"t\", \"steps\": [{\"agent\": \"coder\", "
		"\"goal\": \"g\"}]}]}\n```",
		"{\"reason\": \"r\", \"choice\": 2}",
		"{\"issues\": [\"a\", \"b\"], \"verdict\": \"changes\"}",
	};
	static const char subst[] = { '{', '}', '[', ']', '"', '\\', '\0', (char)0xff, ' ', 'x' };
	char buf[512];
	size_t parsed_ok = 0;
	for (size_t v = 0; v < sizeof valid / sizeof valid[0]; v++) {
		size_t n = strlen(valid[v]);
		assert_true(n < sizeof buf);
		for (size_t cut = 0; cut <= n; cut++) {
			memcpy(buf, valid[v], cut); /* not NUL-terminated on purpose */
			parse_all(buf, cut);
		}
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < sizeof subst; k++) {
				memcpy(buf, valid[v], n);
				buf[i] = subst[k];
				parse_all(buf, n);
			}
		/* the untouched reply is accepted by its own parser */
		char *repair;
		if (v == 0) {
			struct agent_turn t;
			parsed_ok += agent_parse_turn(valid[v], n, AGENT_TOOLS_ALL, &t, &repair) == 0;
			agent_turn_clear(&t);
		} else if (v == 1) {
			json_t *pl;
			parsed_ok += agent_parse_plans(valid[v], n, &team, 1, &pl, &repair) == 0;
			json_decref(pl);
		} else if (v == 2) {
			int32_t c;
			char *r;
			parsed_ok += agent_parse_choice(valid[v], n, 3, &c, &r, &repair) == 0 && c == 2;
			free(r);
		} else {
			bool ap;
			json_t *is;
			parsed_ok += agent_parse_verdict(valid[v], n, &ap, &is, &repair) == 0 && !ap;
			json_decref(is);
		}
	}
	assert_int_equal(parsed_ok, 4);

	/* token soup from a fixed xorshift sequence */
	static const char *const tok[] = {
		"{", "}", "[", "]", "\"", ":", ",", " ", "\\", "\"tool\"", "\"args\"", "\"path\"",
		"\"run\"", "\"finish\"", "\"plans\"", "\"choice\"", "\"verdict\"", "\"issues\"",
		"1", "-1", "null", "true", "```", "\n", "'", "\"..\"", "\"/\"",
	};
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = 0;
		int ntok = 1 + (int)(x % 40);
		for (int i = 0; i < ntok; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			const char *t = tok[x % (sizeof tok / sizeof tok[0])];
			size_t tl = strlen(t);
			if (len + tl >= sizeof buf)
				break;
			memcpy(buf + len, t, tl);
			len += tl;
		}
		parse_all(buf, len);
	}
}

/* ---- prompts ---------------------------------------------------------------- */

static void test_prompts(void **state)
{
	(void)state;
	char *w = agent_protocol_prompt(AGENT_KIND_WORKER, AGENT_TOOLS_ALL);
	assert_non_null(w);
	for (int t = 0; t < AGENT_TOOL_COUNT_; t++) {
		char line[64];
		snprintf(line, sizeof line, "- %s {", agent_tool_name((enum agent_tool)t));
		assert_non_null(strstr(w, line));
	}
	assert_non_null(strstr(w, "{\"thought\": "));
	assert_non_null(strstr(w, "\"test_command\""));
	free(w);
	unsigned doc = AGENT_TOOLS_ALL & ~TOOLBIT(RUN);
	w = agent_protocol_prompt(AGENT_KIND_WORKER, doc);
	assert_non_null(w);
	assert_null(strstr(w, "- run "));
	assert_non_null(strstr(w, "- edit_file {\"path\": \"<file>\", \"search\""));
	free(w);
	char *p = agent_protocol_prompt(AGENT_KIND_PLANNER, 0);
	assert_non_null(p);
	assert_non_null(strstr(p, "{\"plans\": [{\"title\""));
	assert_non_null(strstr(p, "\"choice\": <the index"));
	assert_null(strstr(p, "- read_file"));
	free(p);
	char *r = agent_protocol_prompt(AGENT_KIND_REVIEWER, AGENT_TOOLS_ALL);
	assert_non_null(r);
	assert_non_null(strstr(r, "\"verdict\": \"approve\" | \"changes\"}"));
	assert_null(strstr(r, "- read_file"));
	free(r);
	assert_null(agent_protocol_prompt((enum agent_kind)42, 0));
	assert_int_equal(tk_err_last(), TK_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_turn_valid),
		cmocka_unit_test(test_turn_malformed),
		cmocka_unit_test(test_turn_paths),
		cmocka_unit_test(test_reply_cap),
		cmocka_unit_test(test_plans),
		cmocka_unit_test(test_choice),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_schema_turn),
		cmocka_unit_test(test_schema_others),
		cmocka_unit_test(test_robustness),
		cmocka_unit_test(test_prompts),
	};
	return cmocka_run_group_tests(tests, team_setup, team_teardown);
}
