/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The source image's config as skiff convert reads it: untrusted JSON
 * (a registry or a layout hands it out), parsed here with no I/O, so
 * that tests/fuzz/fuzz_convert.c runs exactly what convert runs.
 */
#include "convert.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether a config's os/architecture[/variant] is platform. */
static bool config_platform(json_t *j, const char *platform, char *have,
			    size_t havelen)
{
	const char *os = json_string_value(json_object_get(j, "os"));
	const char *arch = json_string_value(json_object_get(j, "architecture"));
	const char *var = json_string_value(json_object_get(j, "variant"));

	snprintf(have, havelen, "%s/%s", os ? os : "?", arch ? arch : "?");
	if (!strcmp(have, platform))
		return true;
	if (var)
		snprintf(have + strlen(have), havelen - strlen(have), "/%s", var);
	return !strcmp(have, platform);
}

int cli_conv_config_parse(const char *buf, size_t len, unsigned int nlayers,
			  const char *platform,
			  char (**diff_ids)[SK_HEX_LEN + 1], struct sk_err *e)
{
	char have[160];
	json_t *j, *ids;
	json_error_t je;
	int ret = 0;

	*diff_ids = NULL;
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	ids = json_object_get(json_object_get(j, "rootfs"), "diff_ids");
	if (!json_is_object(j) || !json_is_array(ids) ||
	    json_array_size(ids) != nlayers) {
		sk_err_set(e, "image config: %s", !json_is_object(j) ? je.text :
			   "rootfs.diff_ids does not list one digest per layer");
		ret = -EINVAL;
		goto out;
	}
	if (platform && !config_platform(j, platform, have, sizeof(have))) {
		sk_err_set(e, "the image is for %s, not %s", have, platform);
		ret = -ENOENT;
		goto out;
	}
	*diff_ids = calloc((size_t)nlayers + 1, sizeof(**diff_ids));
	if (!*diff_ids) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < nlayers; i++) {
		const char *s = json_string_value(json_array_get(ids, i));
		uint8_t bin[SK_SHA256_LEN];

		if (!s || strncmp(s, "sha256:", 7) || strlen(s) != 7 + SK_HEX_LEN ||
		    sk_unhex(s + 7, SK_HEX_LEN, bin)) {
			sk_err_set(e, "image config: bad diff id %u", i);
			free(*diff_ids);
			*diff_ids = NULL;
			ret = -EINVAL;
			goto out;
		}
		sk_hex(bin, sizeof(bin), (*diff_ids)[i]);
	}
out:
	json_decref(j);
	return ret;
}
