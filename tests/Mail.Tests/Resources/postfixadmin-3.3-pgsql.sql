-- The tables PostfixAdmin 3.3 creates in PostgreSQL (setup.php / upgrade.php,
-- all upgrades applied), as the suite reads and writes them.
CREATE TABLE config (
    id serial PRIMARY KEY,
    name varchar(20) NOT NULL UNIQUE,
    value varchar(20) NOT NULL
);
CREATE TABLE domain (
    domain varchar(255) NOT NULL PRIMARY KEY,
    description varchar(255) NOT NULL DEFAULT '',
    aliases integer NOT NULL DEFAULT 0,
    mailboxes integer NOT NULL DEFAULT 0,
    maxquota bigint NOT NULL DEFAULT 0,
    quota bigint NOT NULL DEFAULT 0,
    transport varchar(255) DEFAULT NULL,
    backupmx boolean NOT NULL DEFAULT false,
    created timestamp with time zone DEFAULT now(),
    modified timestamp with time zone DEFAULT now(),
    active boolean NOT NULL DEFAULT true,
    password_expiry integer DEFAULT 0
);
CREATE INDEX domain_domain_active ON domain(domain, active);
CREATE TABLE admin (
    username varchar(255) NOT NULL PRIMARY KEY,
    password varchar(255) NOT NULL DEFAULT '',
    created timestamp with time zone DEFAULT now(),
    modified timestamp with time zone DEFAULT now(),
    active boolean NOT NULL DEFAULT true,
    superadmin boolean NOT NULL DEFAULT false,
    phone varchar(30) NOT NULL DEFAULT '',
    email_other varchar(255) NOT NULL DEFAULT '',
    token varchar(255) NOT NULL DEFAULT '',
    token_validity timestamp with time zone DEFAULT '2000-01-01 00:00:00+00'
);
CREATE TABLE domain_admins (
    username varchar(255) NOT NULL,
    domain varchar(255) NOT NULL REFERENCES domain(domain),
    created timestamp with time zone DEFAULT now(),
    active boolean NOT NULL DEFAULT true
);
CREATE TABLE mailbox (
    username varchar(255) NOT NULL PRIMARY KEY,
    password varchar(255) NOT NULL DEFAULT '',
    name varchar(255) NOT NULL DEFAULT '',
    maildir varchar(255) NOT NULL DEFAULT '',
    quota bigint NOT NULL DEFAULT 0,
    created timestamp with time zone DEFAULT now(),
    modified timestamp with time zone DEFAULT now(),
    active boolean NOT NULL DEFAULT true,
    domain varchar(255) REFERENCES domain(domain),
    local_part varchar(255) NOT NULL,
    phone varchar(30) NOT NULL DEFAULT '',
    email_other varchar(255) NOT NULL DEFAULT '',
    token varchar(255) NOT NULL DEFAULT '',
    token_validity timestamp with time zone DEFAULT '2000-01-01 00:00:00+00',
    password_expiry timestamp with time zone DEFAULT '2000-01-01 00:00:00+00'
);
CREATE INDEX mailbox_username_active ON mailbox(username, active);
CREATE INDEX mailbox_domain_idx ON mailbox(domain);
CREATE TABLE alias (
    address varchar(255) NOT NULL PRIMARY KEY,
    goto text NOT NULL,
    domain varchar(255) NOT NULL REFERENCES domain(domain),
    created timestamp with time zone DEFAULT now(),
    modified timestamp with time zone DEFAULT now(),
    active boolean NOT NULL DEFAULT true
);
CREATE INDEX alias_address_active ON alias(address, active);
CREATE INDEX alias_domain_idx ON alias(domain);
CREATE TABLE alias_domain (
    alias_domain varchar(255) NOT NULL PRIMARY KEY REFERENCES domain(domain) ON DELETE CASCADE,
    target_domain varchar(255) NOT NULL REFERENCES domain(domain) ON DELETE CASCADE,
    created timestamp with time zone DEFAULT now(),
    modified timestamp with time zone DEFAULT now(),
    active boolean NOT NULL DEFAULT true
);
CREATE INDEX alias_domain_active ON alias_domain(alias_domain, active);
CREATE TABLE quota2 (
    username varchar(100) NOT NULL PRIMARY KEY,
    bytes bigint NOT NULL DEFAULT 0,
    messages integer NOT NULL DEFAULT 0
);
CREATE TABLE log (
    timestamp timestamp with time zone DEFAULT now(),
    username varchar(255) NOT NULL DEFAULT '',
    domain varchar(255) NOT NULL DEFAULT '',
    action varchar(255) NOT NULL DEFAULT '',
    data text NOT NULL DEFAULT '',
    id serial PRIMARY KEY
);
-- PostfixAdmin's pseudo-domain for superadmins.
INSERT INTO domain (domain, description, transport) VALUES ('ALL', '', '');
INSERT INTO config (name, value) VALUES ('version', '1843');
