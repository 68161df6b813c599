/* Allow-list validation of identifiers and French official codes, and the text folding
 * used for name search. Pure functions, no allocation except mu_text_fold. */
#ifndef MU_VALIDATE_H
#define MU_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

/* Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF) of exactly len bytes. */
bool mu_utf8_valid(const char *s, size_t len);

/* SIREN: exactly 9 ASCII digits with a valid Luhn key. */
bool mu_siren_valid(const char *s);

/* INSEE commune code (COG): 5 characters: two digits (01-19, 21-95), or 2A/2B (Corsica),
 * followed by three digits; or 97x/98x overseas (971-978, 984-989 prefixes) followed by
 * two digits. "00000" and "20xxx" are refused. */
bool mu_insee_valid(const char *s);

/* Département code: "01".."95" except "20", "2A", "2B", "971".."976", or overseas
 * collectivity codes "975", "977", "978", "984", "986", "987", "988", "989". */
bool mu_dept_valid(const char *s);

/* Région code: two or three digits. */
bool mu_region_valid(const char *s);

/* Display name: valid UTF-8, 1..maxbytes bytes, no control characters (C0, DEL, C1),
 * no leading or trailing space. Accents, apostrophes, hyphens and any printable
 * character are kept: names are data, escaped where they are output. */
bool mu_name_valid(const char *s, size_t maxbytes);

/* Identifier that may reach a file name, libvirt, ip or a URL: [a-z0-9][a-z0-9._-]{0,62},
 * not ending with '.' or '-', no "..". Used for user names, token names, labels. */
bool mu_ident_valid(const char *s);

/* E-mail address, simple allow-list: local@domain, ASCII, <= 254 bytes, one '@'. */
bool mu_email_valid(const char *s);

/* Folds a UTF-8 name for search: lower case, Latin accents removed (é->e, œ->oe, ß->ss),
 * hyphens, apostrophes (' and ’), underscores and runs of spaces become one space, trimmed.
 * "Saint-Étienne" -> "saint etienne", "L'Haÿ-les-Roses" -> "l hay les roses".
 * Returns a new string (caller frees); invalid UTF-8 bytes are dropped. */
char *mu_text_fold(const char *s);

#endif
