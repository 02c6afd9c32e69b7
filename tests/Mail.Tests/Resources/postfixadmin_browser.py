# PostfixAdmin 3.3 driven in headless Chromium as a new administrator does it.
#   setup URL SETUP_PW ADMIN ADMIN_PW DOMAIN LOCAL USER_PW
#       setup.php: the database schema and a superadmin; then, logged in as that
#       admin, a new domain and a mailbox in it (the welcome mail left on).
#   password URL USER OLD_PW NEW_PW
#       the mailbox's own login (users/) and its password change page.
# Prints "done: ..." at the end; any failure raises with the page's text.
import sys
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select
from roundcube_browser import start


def page_text(driver):
    # The page a form was submitted from can be replaced between finding its
    # body and reading it: that reads as "not there yet", and is read again.
    try:
        return driver.find_element(By.TAG_NAME, 'body').text
    except StaleElementReferenceException:
        return ''


def fill(driver, form, values):
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == 'select':
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)


def submit(form):
    form.find_element(By.CSS_SELECTOR, '[type=submit]').click()


def expect(driver, wait, text):
    try:
        wait.until(lambda d: text in page_text(d))
    except Exception:
        raise SystemExit(f'expected "{text}" on {driver.current_url}:\n{page_text(driver)[:3000]}')


def setup(driver, wait, url, setup_pw, admin, admin_pw, domain, local, user_pw):
    driver.get(url + 'setup.php')
    form = wait.until(EC.presence_of_element_located((By.NAME, 'authenticate')))
    fill(driver, form, {'setup_password': setup_pw})
    submit(form)
    form = wait.until(EC.presence_of_element_located((By.NAME, 'create_admin')))
    fill(driver, form, {'setup_password': setup_pw, 'username': admin, 'password': admin_pw, 'password2': admin_pw})
    submit(form)
    expect(driver, wait, 'has been added')

    driver.get(url + 'login.php')
    form = wait.until(EC.presence_of_element_located((By.NAME, 'frmLogin')))
    fill(driver, form, {'fUsername': admin, 'fPassword': admin_pw})
    submit(form)
    wait.until(lambda d: 'login.php' not in d.current_url)

    driver.get(url + 'edit.php?table=domain')
    form = wait.until(EC.presence_of_element_located((By.NAME, 'edit_domain')))
    fill(driver, form, {'value[domain]': domain, 'value[description]': 'made in PostfixAdmin'})
    submit(form)
    expect(driver, wait, f'The domain {domain} has been added')

    driver.get(url + 'edit.php?table=mailbox&domain=' + domain)
    form = wait.until(EC.presence_of_element_located((By.NAME, 'edit_mailbox')))
    fill(driver, form, {'value[local_part]': local, 'value[domain]': domain, 'value[password]': user_pw,
                        'value[password2]': user_pw, 'value[name]': 'Bob'})
    submit(form)
    expect(driver, wait, f'The mailbox {local}@{domain} has been added')
    print(f'done: {local}@{domain} created')


def password(driver, wait, url, user, old_pw, new_pw):
    driver.get(url + 'users/login.php')
    form = wait.until(EC.presence_of_element_located((By.NAME, 'frmLogin')))
    fill(driver, form, {'fUsername': user, 'fPassword': old_pw})
    submit(form)
    wait.until(lambda d: 'login.php' not in d.current_url)
    driver.get(url + 'users/password.php')
    form = wait.until(EC.presence_of_element_located((By.NAME, 'password')))
    fill(driver, form, {'fPassword_current': old_pw, 'fPassword': new_pw, 'fPassword2': new_pw})
    submit(form)
    expect(driver, wait, 'has been changed')
    print(f'done: password of {user} changed')


driver, wait = start()
try:
    {'setup': setup, 'password': password}[sys.argv[1]](driver, wait, *sys.argv[2:])
finally:
    driver.quit()
