-- The security team's certificates (`vigie-collector admin-cert`): the
-- console's access to `/v1/admin/`. A certificate is accepted while it is
-- here, not revoked and not expired; every request made with one is
-- logged (ANSSI R35 asks that the accesses to the review be logged too).
CREATE TABLE admin_certs (
    serial      text PRIMARY KEY,
    name        text NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    not_after   timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX admin_certs_name ON admin_certs (name);
CREATE TABLE admin_access (
    id      bigserial PRIMARY KEY,
    name    text NOT NULL,
    serial  text NOT NULL,
    method  text NOT NULL,
    path    text NOT NULL,
    status  integer NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_access_at ON admin_access (at);
