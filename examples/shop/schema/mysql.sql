-- The sample web shop of examples/shop, for MariaDB 10.11 (or MySQL 8):
-- InnoDB, utf8mb4. The same tables and columns as postgres.sql and
-- sqlite.sql. Foreign keys have no ON DELETE CASCADE: Lethe orders an
-- erasure's deletions itself. DATETIME, not TIMESTAMP: no 2038 limit and
-- no implicit ON UPDATE. Statements end with ";" at the end of a line,
-- which is where shop.Create splits them.

-- products holds no personal data.
CREATE TABLE products (
    id          INT          NOT NULL AUTO_INCREMENT,
    name        VARCHAR(200) NOT NULL,
    price_cents INT          NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY products_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE customers (
    id         INT          NOT NULL AUTO_INCREMENT,
    lethe_id   VARCHAR(40)  NOT NULL,
    email      VARCHAR(255) NOT NULL,
    full_name  VARCHAR(200) NOT NULL,
    phone      VARCHAR(40)  NULL,
    birth_date DATE         NULL,
    created_at DATETIME     NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- set by Lethe when the customer restricts processing (Art. 18): the
    -- shop then only stores the account
    processing_restricted BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (id),
    UNIQUE KEY customers_lethe_id (lethe_id),
    UNIQUE KEY customers_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE addresses (
    id          INT          NOT NULL AUTO_INCREMENT,
    customer_id INT          NOT NULL,
    street      VARCHAR(200) NOT NULL,
    city        VARCHAR(100) NOT NULL,
    postcode    VARCHAR(20)  NOT NULL,
    country     CHAR(2)      NOT NULL,
    PRIMARY KEY (id),
    KEY addresses_customer_id (customer_id),
    CONSTRAINT addresses_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE orders (
    id               INT          NOT NULL AUTO_INCREMENT,
    customer_id      INT          NOT NULL,
    placed_at        DATETIME     NOT NULL,
    status           VARCHAR(20)  NOT NULL,
    total_cents      INT          NOT NULL,
    shipping_name    VARCHAR(200) NOT NULL,
    shipping_address VARCHAR(500) NOT NULL,
    PRIMARY KEY (id),
    KEY orders_customer_id (customer_id),
    CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE order_items (
    id           INT          NOT NULL AUTO_INCREMENT,
    order_id     INT          NOT NULL,
    product      VARCHAR(200) NOT NULL,
    quantity     INT          NOT NULL,
    price_cents  INT          NOT NULL,
    gift_message TEXT         NULL,
    PRIMARY KEY (id),
    KEY order_items_order_id (order_id),
    CONSTRAINT order_items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE invoices (
    id              INT          NOT NULL AUTO_INCREMENT,
    customer_id     INT          NOT NULL,
    order_id        INT          NOT NULL,
    number          VARCHAR(20)  NOT NULL,
    issued_at       DATETIME     NOT NULL,
    billing_name    VARCHAR(200) NOT NULL,
    billing_address VARCHAR(500) NOT NULL,
    total_cents     INT          NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY invoices_number (number),
    KEY invoices_customer_id (customer_id),
    KEY invoices_order_id (order_id),
    CONSTRAINT invoices_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id),
    CONSTRAINT invoices_order_fk FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- newsletter is linked to a person by email only: subscribers need no account.
CREATE TABLE newsletter (
    id            INT          NOT NULL AUTO_INCREMENT,
    email         VARCHAR(255) NOT NULL,
    subscribed_at DATETIME     NOT NULL,
    source        VARCHAR(40)  NOT NULL,
    -- set by Lethe on an objection to the newsletter (Art. 21) or a
    -- restriction: no newsletter goes to a suppressed address
    suppressed    BOOLEAN      NOT NULL DEFAULT FALSE,
    PRIMARY KEY (id),
    UNIQUE KEY newsletter_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE support_tickets (
    id          INT          NOT NULL AUTO_INCREMENT,
    customer_id INT          NOT NULL,
    subject     VARCHAR(200) NOT NULL,
    body        TEXT         NOT NULL,
    created_at  DATETIME     NOT NULL,
    PRIMARY KEY (id),
    KEY support_tickets_customer_id (customer_id),
    CONSTRAINT support_tickets_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE activity_log (
    id          INT          NOT NULL AUTO_INCREMENT,
    customer_id INT          NOT NULL,
    at          DATETIME     NOT NULL,
    event       VARCHAR(40)  NOT NULL,
    ip_address  VARCHAR(45)  NULL,
    user_agent  VARCHAR(500) NULL,
    PRIMARY KEY (id),
    KEY activity_log_customer_id (customer_id),
    CONSTRAINT activity_log_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
