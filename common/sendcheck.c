#include "sendcheck.h"

#include <stdint.h>

#include "auth.h"

Parley__V1__ErrorCode psend_validate(const Parley__V1__Send *s,
                                     char recipient[PARLEY_NAME_MAX + 1], const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (!s) {
        *why = "missing send";
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    }
    if (s->client_id == 0) {
        *why = "client_id must not be 0";
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    }
    if (!s->recipient || pauth_name_normalize(s->recipient, recipient) != 0) {
        *why = "recipient is not a valid account name";
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    }
    if (s->n_envelopes == 0) {
        *why = "no envelopes";
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    }
    if (s->n_envelopes > PARLEY_MAX_ENVELOPES_PER_SEND) {
        *why = "too many envelopes";
        return PARLEY__V1__ERROR_CODE__TOO_MANY_ENVELOPES;
    }
    for (size_t i = 0; i < s->n_envelopes; i++) {
        const Parley__V1__OutEnvelope *e = s->envelopes[i];
        /* ids travel as PostgreSQL integer: larger ones cannot name a device */
        if (!e || e->device_id == 0 || e->device_id > INT32_MAX) {
            *why = "device_id out of range";
            return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
        }
        if (e->registration_id == 0 || e->registration_id > PARLEY_REGISTRATION_ID_MAX) {
            *why = "registration_id out of range";
            return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
        }
        if (e->content.len == 0) {
            *why = "empty envelope content";
            return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
        }
        if (e->content.len > PARLEY_MAX_ENVELOPE_BYTES) {
            *why = "envelope content too large";
            return PARLEY__V1__ERROR_CODE__ENVELOPE_TOO_LARGE;
        }
        for (size_t j = 0; j < i; j++) {
            if (s->envelopes[j]->device_id == e->device_id) {
                *why = "duplicate device_id";
                return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
            }
        }
    }
    *why = NULL;
    return PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED;
}
