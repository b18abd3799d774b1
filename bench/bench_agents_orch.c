/*
 * bench_agents_orch.c — the orchestrator's own cost per model call: a task
 * on the scripted backend (no model time) whose coder makes N tool calls
 * that need no sandbox (list_files and read_file alternately), over a
 * workspace of F input files of B bytes each. Each call builds a briefing
 * packet (file tree, relevant files, recent tool results, fitted to the
 * context window), parses the reply, runs the tool and emits events.
 * Prints numbers; never fails on time.
 *
 *   bench_agents_orch [N [F [B]]]     defaults 200 20 2000
 */
#include "agents/agents.h"
#include "core/time.h"
#include "obs/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_events(void *ud, const char *type, const json_t *data)
{
	(void)type, (void)data;
	(*(long *)ud)++;
	return 0;
}

static json_t *reply(const char *agent, int turn, const char *text)
{
	return json_pack("{s:s, s:i, s:s}", "agent", agent, "turn", turn, "text", text);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	int n_files = argc > 2 ? atoi(argv[2]) : 20;
	int bytes = argc > 3 ? atoi(argv[3]) : 2000;
	if (n < 1 || n_files < 1 || n_files > 256 || bytes < 1 || bytes > (1 << 20)) {
		fprintf(stderr, "usage: bench_agents_orch [N [FILES<=256 [BYTES<=1MiB]]]\n");
		return 2;
	}
	tk_log_set_level(TK_LOG_WARNING);
	char dir[] = "/tmp/bench_agents_orch.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char script[128];
	snprintf(script, sizeof script, "%s/script.json", dir);

	json_t *resp = json_array();
	json_array_append_new(resp, reply("planner-critic", 0,
					  "{\"plans\": [{\"title\": \"t\", \"steps\": [{\"agent\": "
					  "\"coder\", \"goal\": \"look around\"}]}]}"));
	for (int i = 0; i < n; i++)
		json_array_append_new(
			resp, reply("coder", i,
				    i % 2 ? "{\"thought\": \"\", \"tool\": \"read_file\", \"args\": "
					    "{\"path\": \"src/f0.c\"}}"
					  : "{\"thought\": \"\", \"tool\": \"list_files\", \"args\": "
					    "{\"path\": \".\"}}"));
	json_array_append_new(resp, reply("coder", n,
					  "{\"thought\": \"\", \"tool\": \"finish\", \"args\": "
					  "{\"summary\": \"done\"}}"));
	json_array_append_new(resp, json_pack("{s:s, s:s}", "agent", "code-reviewer", "text",
					      "{\"verdict\": \"approve\", \"issues\": []}"));
	json_t *doc = json_pack("{s:o}", "responses", resp);
	if (json_dump_file(doc, script, 0))
		return 1;
	json_decref(doc);

	struct llm_options o;
	llm_options_default(&o);
	o.backend = "scripted";
	o.script = script;
	struct llm_backend *b = llm_backend_new(&o);
	struct agent_team team;
	if (!b || agent_team_default(&team))
		return 1;
	for (size_t i = 0; i < team.n; i++)
		team.agents[i].max_turns = n + 10;
	struct agent_settings s;
	agent_settings_default(&s);
	s.plans = 1;
	s.budget.max_tokens = 1000000000; /* estimated usage must not end it */
	struct tk_sandbox_profiles ps;
	tk_sandbox_profiles_defaults(&ps);

	char *content = malloc((size_t)bytes);
	struct agent_file *files = calloc((size_t)n_files, sizeof *files);
	char (*names)[32] = calloc((size_t)n_files, sizeof *names);
	if (!content || !files || !names)
		return 1;
	for (int i = 0; i < bytes; i++)
		content[i] = i % 61 == 60 ? '\n' : (char)('a' + i % 26);
	for (int i = 0; i < n_files; i++) {
		snprintf(names[i], sizeof names[i], "src/f%d.c", i);
		files[i] = (struct agent_file){ names[i], content, (size_t)bytes };
	}
	long events = 0;
	struct agent_env env = { .llm = b, .team = &team, .settings = &s, .profiles = &ps,
				 .emit = count_events, .emit_ud = &events };
	struct agent_task t = { .description = "Look around the project.", .files = files,
				.n_files = (size_t)n_files };
	struct agent_result r;
	int64_t t0 = tk_time_mono_ns();
	int rc = agent_run_task(&env, &t, &r);
	double ms = (double)(tk_time_mono_ns() - t0) / 1e6;
	if (rc) {
		fprintf(stderr, "agent_run_task: %d\n", rc);
		return 1;
	}
	long calls = (long)json_integer_value(json_object_get(r.usage, "llm_calls"));
	printf("tool calls %d, files %d x %d B: %s, %ld model calls, %ld events, %.1f ms, "
	       "%.3f ms per model call\n",
	       n, n_files, bytes, agent_outcome_name(r.outcome), calls, events, ms,
	       ms / (double)calls);
	agent_result_free(&r);
	agent_team_free(&team);
	llm_backend_free(b);
	free(content);
	free(files);
	free(names);
	unlink(script);
	rmdir(dir);
	return 0;
}
