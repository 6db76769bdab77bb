-- The sample web shop of examples/shop, for SQLite 3.x. The same tables
-- and columns as postgres.sql and mysql.sql. Foreign keys have no ON
-- DELETE CASCADE: Lethe orders an erasure's deletions itself. SQLite
-- enforces them only on connections that enable them (PRAGMA
-- foreign_keys = ON, or _pragma=foreign_keys(1) in a modernc.org/sqlite
-- DSN). AUTOINCREMENT keeps the ids of deleted rows from being reused.
-- Dates and times are declared DATE and TIMESTAMP, which drivers such as
-- modernc.org/sqlite read back as times.

-- products holds no personal data.
CREATE TABLE products (
    id          INTEGER      PRIMARY KEY AUTOINCREMENT,
    name        VARCHAR(200) NOT NULL UNIQUE,
    price_cents INTEGER      NOT NULL
);

CREATE TABLE customers (
    id         INTEGER      PRIMARY KEY AUTOINCREMENT,
    lethe_id   VARCHAR(40)  NOT NULL UNIQUE,
    email      VARCHAR(255) NOT NULL UNIQUE,
    full_name  VARCHAR(200) NOT NULL,
    phone      VARCHAR(40),
    birth_date DATE,
    created_at TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- set by Lethe when the customer restricts processing (Art. 18): the
    -- shop then only stores the account (0 or 1)
    processing_restricted BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE addresses (
    id          INTEGER      PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER      NOT NULL,
    street      VARCHAR(200) NOT NULL,
    city        VARCHAR(100) NOT NULL,
    postcode    VARCHAR(20)  NOT NULL,
    country     CHAR(2)      NOT NULL,
    CONSTRAINT addresses_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE INDEX addresses_customer_id ON addresses (customer_id);

CREATE TABLE orders (
    id               INTEGER      PRIMARY KEY AUTOINCREMENT,
    customer_id      INTEGER      NOT NULL,
    placed_at        TIMESTAMP    NOT NULL,
    status           VARCHAR(20)  NOT NULL,
    total_cents      INTEGER      NOT NULL,
    shipping_name    VARCHAR(200) NOT NULL,
    shipping_address VARCHAR(500) NOT NULL,
    CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE INDEX orders_customer_id ON orders (customer_id);

CREATE TABLE order_items (
    id           INTEGER      PRIMARY KEY AUTOINCREMENT,
    order_id     INTEGER      NOT NULL,
    product      VARCHAR(200) NOT NULL,
    quantity     INTEGER      NOT NULL,
    price_cents  INTEGER      NOT NULL,
    gift_message TEXT,
    CONSTRAINT order_items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id)
);
CREATE INDEX order_items_order_id ON order_items (order_id);

CREATE TABLE invoices (
    id              INTEGER      PRIMARY KEY AUTOINCREMENT,
    customer_id     INTEGER      NOT NULL,
    order_id        INTEGER      NOT NULL,
    number          VARCHAR(20)  NOT NULL UNIQUE,
    issued_at       TIMESTAMP    NOT NULL,
    billing_name    VARCHAR(200) NOT NULL,
    billing_address VARCHAR(500) NOT NULL,
    total_cents     INTEGER      NOT NULL,
    CONSTRAINT invoices_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id),
    CONSTRAINT invoices_order_fk FOREIGN KEY (order_id) REFERENCES orders (id)
);
CREATE INDEX invoices_customer_id ON invoices (customer_id);
CREATE INDEX invoices_order_id ON invoices (order_id);

-- newsletter is linked to a person by email only: subscribers need no account.
CREATE TABLE newsletter (
    id            INTEGER      PRIMARY KEY AUTOINCREMENT,
    email         VARCHAR(255) NOT NULL UNIQUE,
    subscribed_at TIMESTAMP    NOT NULL,
    source        VARCHAR(40)  NOT NULL,
    -- set by Lethe on an objection to the newsletter (Art. 21) or a
    -- restriction: no newsletter goes to a suppressed address (0 or 1)
    suppressed    BOOLEAN      NOT NULL DEFAULT 0
);

CREATE TABLE support_tickets (
    id          INTEGER      PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER      NOT NULL,
    subject     VARCHAR(200) NOT NULL,
    body        TEXT         NOT NULL,
    created_at  TIMESTAMP    NOT NULL,
    CONSTRAINT support_tickets_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE INDEX support_tickets_customer_id ON support_tickets (customer_id);

CREATE TABLE activity_log (
    id          INTEGER      PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER      NOT NULL,
    at          TIMESTAMP    NOT NULL,
    event       VARCHAR(40)  NOT NULL,
    ip_address  VARCHAR(45),
    user_agent  VARCHAR(500),
    CONSTRAINT activity_log_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE INDEX activity_log_customer_id ON activity_log (customer_id);
