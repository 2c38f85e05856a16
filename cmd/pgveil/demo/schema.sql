-- pgveil demo: a small CRM with made-up people, shaped like the systems that
-- anonymize customers on request. `pgveil demo` runs this file as the
-- superuser in a fresh database named crm; rules.yaml next to it says which
-- columns are personal data. Every value is generated from the row number,
-- so every run loads the same rows.

CREATE TABLE customers (
  id              int8 PRIMARY KEY,
  customer_number text NOT NULL UNIQUE,  -- what support quotes on the phone
  email           text UNIQUE,
  first_name      text,
  last_name       text,
  phone           text,
  job_title       text,
  birth_date      date,
  segment_1       text,                  -- free segment fields: customer type,
  segment_2       text,                  -- region,
  segment_3       text,                  -- and how they found us
  created_at      timestamptz NOT NULL,
  anonymized_at   timestamptz            -- set by ANONYMIZE
);

CREATE TABLE survey_responses (
  id          int8 PRIMARY KEY,
  customer_id int8 NOT NULL REFERENCES customers,
  answered_at timestamptz NOT NULL,
  nps         int NOT NULL CHECK (nps BETWEEN 0 AND 10),
  comment     text
);
CREATE INDEX ON survey_responses (customer_id);

-- Contact-centre conversations, one partition per month of started_at.
-- PostgreSQL accepts a unique key on a partitioned table only if it holds
-- the partition key, so the primary key is (id, started_at), and the rules
-- declare that composite key.
CREATE TABLE conversations (
  id          int8 NOT NULL,
  customer_id int8 NOT NULL REFERENCES customers,
  started_at  timestamptz NOT NULL,
  channel     text NOT NULL,
  phone       text,
  email       text,
  transcript  text,
  PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX ON conversations (customer_id);

DO $$
BEGIN
  FOR m IN 1..12 LOOP
    EXECUTE format('CREATE TABLE conversations_2024_%s PARTITION OF conversations FOR VALUES FROM (%L) TO (%L)',
      lpad(m::text, 2, '0'), make_timestamptz(2024, m, 1, 0, 0, 0, 'UTC'),
      make_timestamptz(2024, m, 1, 0, 0, 0, 'UTC') + interval '1 month');
  END LOOP;
END $$;

-- 2,000 customers. Names, titles and places are picked from short lists by
-- multiples of the id, so the combinations vary.
INSERT INTO customers
SELECT id,
       'C-' || (100000 + id),
       lower(translate(replace(replace(f, 'æ', 'ae'), 'Æ', 'Ae'), 'øåØÅéöäÖÄ', 'oaOAeoaOA')) || '.' ||
       lower(translate(replace(replace(l, 'æ', 'ae'), 'Æ', 'Ae'), 'øåØÅéöäÖÄ', 'oaOAeoaOA')) ||
       CASE WHEN id > 50 THEN id::text ELSE '' END || '@' ||
       (ARRAY['example.com', 'example.org', 'example.net'])[1 + id % 3],
       f, l,
       CASE WHEN id % 4 = 0 THEN '+46 7' || lpad(((id * 7919) % 100000000)::text, 8, '0')
            ELSE '+47 ' || (ARRAY['4', '9'])[1 + id % 2] || lpad(((id * 104729) % 10000000)::text, 7, '0') END,
       (ARRAY['Accountant', 'Nurse', 'Software developer', 'Teacher', 'Sales manager', 'Electrician',
              'Lærer', 'Sykepleier', 'Daglig leder', 'Project manager', 'Student', 'Ingeniør', NULL])[1 + (id * 5) % 13],
       date '1950-01-01' + (id * 7919) % 19000,
       (ARRAY['consumer', 'consumer', 'consumer', 'small business', 'small business', 'enterprise', 'public sector'])[1 + (id * 3 + id / 13) % 7],
       (ARRAY['Oslo', 'Bergen', 'Trondheim', 'Stavanger', 'Tromsø', 'Stockholm', 'Göteborg', 'København', 'London', 'Manchester'])[1 + (id * 7) % 10],
       (ARRAY['web', 'store', 'partner', 'referral'])[1 + (id * 11) % 4],
       timestamptz '2019-01-01 00:00+00' + (id * 7207 % 2000) * interval '1 day' + (id % 86400) * interval '1 second',
       NULL
FROM generate_series(1, 2000) AS id,
     LATERAL (SELECT (ARRAY['Kari', 'Ola', 'Ingrid', 'Lars', 'Sofie', 'Emma', 'Nora', 'Jakob', 'Astrid', 'Magnus',
                            'Sigrid', 'Håkon', 'Bjørn', 'Solveig', 'Oliver', 'Amelia', 'James', 'Charlotte', 'Erik', 'Maja',
                            'Henrik', 'Linnea', 'George', 'Freya', 'Øystein', 'Thomas', 'Ane'])[1 + id % 27] AS f,
                     (ARRAY['Nordmann', 'Hansen', 'Johansen', 'Olsen', 'Larsen', 'Andersen', 'Pedersen', 'Nilsen', 'Kristiansen',
                            'Berg', 'Haugen', 'Bakken', 'Lindqvist', 'Søderberg', 'Smith', 'Jones', 'Taylor', 'Brown', 'Williams',
                            'Dahl', 'Strand', 'Lie', 'Ødegård', 'Andersson', 'Wilson', 'Hagen', 'Moen', 'Holm', 'Eriksen'])[1 + (id * 13) % 29] AS l) AS names;

-- 5,000 survey answers. Each segment leans a different way, so NPS per
-- segment differs.
INSERT INTO survey_responses
SELECT n, c.id,
       c.created_at + (n % 500) * interval '1 day',
       least(10, greatest(0, (ARRAY[10, 9, 9, 8, 10, 7, 9, 6, 8, 10, 3, 9, 5, 8, 10, 2, 9, 7, 10, 0])[1 + (n * 7) % 20] +
                             CASE c.segment_1 WHEN 'enterprise' THEN 1 WHEN 'public sector' THEN -2 WHEN 'consumer' THEN -1 ELSE 0 END)),
       CASE WHEN n % 3 = 0 THEN NULL
            ELSE (ARRAY['Quick and friendly help, thank you!',
                        'I waited 40 minutes on the phone. Call me on ' || c.phone || ' next time.',
                        'Veldig fornøyd med kundeservice.',
                        'The invoice was wrong twice. ' || c.first_name || ' ' || c.last_name,
                        'Good app, but the login keeps failing.',
                        'Takk for hjelpen, hilsen ' || c.first_name || '.',
                        'Please stop emailing ' || c.email || ' with offers.'])[1 + n % 7] END
FROM generate_series(1, 5000) AS n
JOIN customers c ON c.id = 1 + (n * 53) % 2000;

-- 6,000 conversations spread over 2024.
INSERT INTO conversations
SELECT n, c.id, t, ch,
       CASE WHEN ch = 'phone' THEN c.phone END,
       CASE WHEN ch <> 'phone' THEN c.email END,
       'Agent: Hello, you are speaking with ' || (ARRAY['Mona', 'Rune', 'Priya', 'Tom'])[1 + n % 4] || '. How can I help?' || E'\n' ||
       'Customer: Hi, this is ' || c.first_name || ' ' || c.last_name || ', customer ' || c.customer_number || '. ' ||
       (ARRAY['My last invoice looks too high.', 'I have moved and need to change my address.',
              'I cannot log in to the app.', 'I want to cancel my subscription.', 'Jeg lurer på fakturaen min.'])[1 + n % 5] ||
       ' You can reach me on ' || coalesce(c.phone, c.email) || '.' || E'\n' ||
       'Agent: Thank you, I have updated your case.'
FROM generate_series(1, 6000) AS n
CROSS JOIN LATERAL (SELECT timestamptz '2024-01-01 00:00+00' + ((n * 7727) % (366 * 24 * 60)) * interval '1 minute' AS t,
                           (ARRAY['phone', 'chat', 'email'])[1 + n % 3] AS ch) AS x
JOIN customers c ON c.id = 1 + (n * 37) % 2000;

ANALYZE;

-- The demo's login roles (password = name), all reaching the data through
-- pgveil. rules.yaml makes dba unmasked and lets dpo run ANONYMIZE; support
-- and dpo are masked.
CREATE ROLE support LOGIN PASSWORD 'support';
CREATE ROLE dba LOGIN PASSWORD 'dba';
CREATE ROLE dpo LOGIN PASSWORD 'dpo';
GRANT SELECT ON customers, survey_responses, conversations TO support;
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, survey_responses, conversations TO dba;
GRANT SELECT, UPDATE ON customers, survey_responses, conversations TO dpo;
