-- Fills event_terms from the events (migration 0004, and after retention).
INSERT OR IGNORE INTO event_terms
    SELECT 'service', service_id, service_name, lower(service_id || ' ' || service_name || ' ' || vendor)
    FROM events GROUP BY service_id;
INSERT OR IGNORE INTO event_terms SELECT DISTINCT 'category', category, category, lower(category) FROM events;
INSERT OR IGNORE INTO event_terms
    SELECT DISTINCT 'user', user, user, lower(user) FROM events WHERE user IS NOT NULL;
INSERT OR IGNORE INTO event_terms
    SELECT DISTINCT 'program', program, program, lower(program) FROM events WHERE program IS NOT NULL;
INSERT OR IGNORE INTO event_terms SELECT DISTINCT 'rule', rule_id, rule_id, lower(rule_id) FROM events;
INSERT OR IGNORE INTO event_terms SELECT DISTINCT 'name', name, name, lower(name) FROM events;
