/*
 * cmd_keys.c — `tanuki keys create|list|revoke`: API key administration on
 * the database in --data-dir (DIR/tanuki.db), without a running server.
 * Safe to run next to a server on the same directory (SQLite locking).
 */
#include "cli/cli.h"

#include "core/err.h"
#include "obs/log.h"
#include "store/store.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: tanuki keys create --data-dir DIR --name NAME --role user|admin\n"
	"       tanuki keys list   --data-dir DIR [--json]\n"
	"       tanuki keys revoke --data-dir DIR ID\n\n"
	"create  makes a new API key and prints it ONCE, as the last line of\n"
	"        stdout (\"tk_<id>_<secret>\"). Only a salted hash is stored: a\n"
	"        lost key cannot be shown again; revoke it and create another.\n"
	"list    shows every key: id, name, role, created, last used, revoked.\n"
	"        Secrets are never shown (they are not stored).\n"
	"revoke  revokes the key with this id (the part after \"tk_\"); requests\n"
	"        with it are refused from then on. Revoking twice is not an error.\n\n"
	"--data-dir defaults to $TANUKI_DATA_DIR. The database is DIR/tanuki.db.\n";

struct keys_args {
	const char *data_dir;
	const char *name;
	const char *role;
	bool json;
	int first_arg; /* index in argv of the first operand */
};

static int parse_args(int argc, char **argv, struct keys_args *a)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "name", required_argument, NULL, 'n' },
		{ "role", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	memset(a, 0, sizeof *a);
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+d:n:r:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'd': a->data_dir = optarg; break;
		case 'n': a->name = optarg; break;
		case 'r': a->role = optarg; break;
		case 'j': a->json = true; break;
		default: return cli_usage_error("keys", "unknown option");
		}
	}
	a->first_arg = optind;
	if (!a->data_dir || !*a->data_dir)
		a->data_dir = getenv("TANUKI_DATA_DIR");
	if (!a->data_dir || !*a->data_dir)
		return cli_usage_error("keys", "--data-dir is required (or set TANUKI_DATA_DIR)");
	return CLI_OK;
}

static int keys_create(struct tk_store *s, const struct keys_args *a, int argc)
{
	if (a->first_arg < argc)
		return cli_usage_error("keys", "create: unexpected argument");
	if (!a->name)
		return cli_usage_error("keys", "create: --name is required");
	if (!a->role)
		return cli_usage_error("keys", "create: --role user|admin is required");
	enum tk_key_role role;
	if (tk_key_role_parse(a->role, &role))
		return cli_usage_error("keys", "create: %s", tk_err_detail());
	char key[TK_KEY_TEXT_LEN];
	struct tk_api_key rec;
	if (tk_store_key_create(s, a->name, role, key, &rec))
		return cli_fail("keys", "create");
	printf("created API key %s (name \"%s\", role %s)\n", rec.id, rec.name,
	       tk_key_role_name(rec.role));
	printf("store it now: it is shown only once. The key is the last line:\n");
	printf("%s\n", key);
	memset(key, 0, sizeof key);
	return fflush(stdout) ? cli_fail("keys", "write stdout") : CLI_OK;
}

static int list_json(const struct tk_api_key *ks, size_t n)
{
	json_t *arr = json_array();
	if (!arr)
		return cli_fail("keys", "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:b}",
				      "id", ks[i].id, "name", ks[i].name,
				      "role", tk_key_role_name(ks[i].role),
				      "created", ks[i].created,
				      "last_used", ks[i].last_used[0] ? json_string(ks[i].last_used)
								      : json_null(),
				      "revoked_at", ks[i].revoked[0] ? json_string(ks[i].revoked)
								     : json_null(),
				      "revoked", tk_api_key_revoked(&ks[i]));
		if (!o || json_array_append_new(arr, o)) {
			json_decref(arr);
			return cli_fail("keys", "out of memory");
		}
	}
	int rc = json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(arr);
	putchar('\n');
	return rc ? cli_fail("keys", "write stdout") : CLI_OK;
}

static int keys_list(struct tk_store *s, const struct keys_args *a, int argc)
{
	if (a->first_arg < argc)
		return cli_usage_error("keys", "list: unexpected argument");
	struct tk_api_key *ks = NULL;
	size_t n = 0;
	if (tk_store_key_list(s, &ks, &n))
		return cli_fail("keys", "list");
	int rc = CLI_OK;
	if (a->json) {
		rc = list_json(ks, n);
	} else {
		printf("%-16s  %-5s  %-24s  %-24s  %-24s  %s\n", "ID", "ROLE", "CREATED",
		       "LAST USED", "REVOKED", "NAME");
		for (size_t i = 0; i < n; i++)
			printf("%-16s  %-5s  %-24s  %-24s  %-24s  %s\n", ks[i].id,
			       tk_key_role_name(ks[i].role), ks[i].created,
			       ks[i].last_used[0] ? ks[i].last_used : "-",
			       ks[i].revoked[0] ? ks[i].revoked : "-", ks[i].name);
	}
	free(ks);
	return rc;
}

static int keys_revoke(struct tk_store *s, const struct keys_args *a, int argc, char **argv)
{
	if (a->first_arg + 1 != argc)
		return cli_usage_error("keys", "revoke: expected exactly one key ID");
	const char *id = argv[a->first_arg];
	/* Accept the whole key text too, and take its id: people paste it. */
	char idbuf[TK_KEY_ID_LEN];
	if (tk_key_text_valid(id)) {
		memcpy(idbuf, id + 3, TK_KEY_ID_LEN - 1);
		idbuf[TK_KEY_ID_LEN - 1] = '\0';
		id = idbuf;
	}
	int rc = tk_store_key_revoke(s, id);
	if (rc == TK_EINVAL)
		return cli_usage_error("keys", "revoke: %s", tk_err_detail());
	if (rc)
		return cli_fail("keys", "revoke %s", id);
	printf("revoked API key %s\n", id);
	return CLI_OK;
}

int cli_cmd_keys(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (argc < 2)
		return cli_usage_error("keys", "expected create, list or revoke");
	const char *sub = argv[1];
	if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke"))
		return cli_usage_error("keys", "unknown subcommand '%s'", sub);
	struct keys_args a;
	int rc = parse_args(argc - 1, argv + 1, &a);
	if (rc)
		return rc;
	/* Store housekeeping lines (migrations, "key stored") are not for the
	 * terminal of this command. */
	tk_log_set_level(TK_LOG_WARNING);
	struct tk_store *s = tk_store_open_dir(a.data_dir, NULL);
	if (!s)
		return cli_fail("keys", "open %s", a.data_dir);
	if (!strcmp(sub, "create"))
		rc = keys_create(s, &a, argc - 1);
	else if (!strcmp(sub, "list"))
		rc = keys_list(s, &a, argc - 1);
	else
		rc = keys_revoke(s, &a, argc - 1, argv + 1);
	tk_store_close(s);
	return rc;
}
