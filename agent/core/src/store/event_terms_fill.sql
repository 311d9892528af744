-- Fills event_terms from the events already stored (migration 0004).
INSERT OR IGNORE INTO event_terms
    SELECT 'service', service_id, service_name, lower(service_id || ' ' || service_name || ' ' || vendor), NULL
    FROM events GROUP BY service_id;
INSERT OR IGNORE INTO event_terms SELECT DISTINCT 'category', category, category, lower(category), NULL FROM events;
INSERT OR IGNORE INTO event_terms
    SELECT DISTINCT 'user', user, user, lower(user), NULL FROM events WHERE user IS NOT NULL;
INSERT OR IGNORE INTO event_terms
    SELECT DISTINCT 'program', program, program, lower(program), NULL FROM events WHERE program IS NOT NULL;
INSERT OR IGNORE INTO event_terms SELECT DISTINCT 'rule', rule_id, rule_id, lower(rule_id), NULL FROM events;
INSERT OR IGNORE INTO event_terms SELECT 'name', name, name, lower(name), min(service_id) FROM events GROUP BY name;
